"""The runs view at ``/``: the tenant's top-level runs, newest first, filtered by the URL's query
(``agent``, ``status``, ``user``, ``conversation``, ``model``, ``q`` searched in the inputs and
outputs, the time range ``range`` or ``since``/``until``, ``page``), with small charts of runs,
failures and cost over the range above the table.

It reads only through the read service (:meth:`~tracehouse.store.reads.ReadService.runs` and
:meth:`~tracehouse.store.reads.ReadService.activity`). The page's script follows the live stream
and fetches the ``#runs`` section again with the same query; such a request (htmx sends
``HX-Request``) gets the section alone. The charts are SVG drawn here, styled by class only (the
Content-Security-Policy allows no ``style=`` attribute).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from tracehouse.responses import Activity
from tracehouse.web.pages import _page, reader, templates

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
MAX_PAGE = 10_000
DEFAULT_RANGE = "7d"
RANGES = {
    "1h": ("last hour", timedelta(hours=1)),
    "6h": ("last 6 hours", timedelta(hours=6)),
    "24h": ("last 24 hours", timedelta(hours=24)),
    "7d": ("last 7 days", timedelta(days=7)),
    "30d": ("last 30 days", timedelta(days=30)),
    "90d": ("last 90 days", timedelta(days=90)),
}
STATUSES = ("completed", "failed", "running", "incomplete", "cancelled")
TEXT_FILTERS = ("agent", "user", "conversation", "model")
_MAX_VALUE = 1000
_CHART_HEIGHT = 40
_BAR = 4  # width of a bucket in the chart's units; the bar leaves one of them empty

templates.filters.setdefault("path_part", lambda value: quote(str(value), safe=""))


class BadFilter(ValueError):
    pass


@dataclass
class Filters:
    """What the query of ``/`` asks for; ``query()`` gives it back for links."""

    agent: str = ""
    status: str = ""
    user: str = ""
    conversation: str = ""
    model: str = ""
    q: str = ""
    range: str = DEFAULT_RANGE
    since: datetime | None = None  # since/until given: a custom range instead of ``range``
    until: datetime | None = None
    page: int = 1
    raw: dict[str, str] = field(default_factory=dict)

    @property
    def narrowed(self) -> bool:
        """Anything but the time range and the page narrows the list."""
        return any((self.agent, self.status, self.user, self.conversation, self.model, self.q))

    @property
    def custom(self) -> bool:
        return self.since is not None or self.until is not None

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        if self.custom:
            until = self.until or now
            return self.since or until - RANGES[DEFAULT_RANGE][1], until
        return now - RANGES[self.range][1], now

    def query(self, **changes: Any) -> str:
        """The query string of these filters, with ``changes`` (None drops a key)."""
        values = {k: v for k, v in self.raw.items() if k != "page"}
        if self.page > 1:
            values["page"] = str(self.page)
        for key, value in changes.items():
            if value is None:
                values.pop(key, None)
            else:
                values[key] = str(value)
        values = {k: v for k, v in values.items() if v}
        return f"?{urlencode(values)}" if values else ""


def _when(text: str, name: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadFilter(f"{name} must be a date and time like 2026-05-01T12:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_filters(params: Any) -> Filters:
    raw = {k: params.get(k, "").strip()[:_MAX_VALUE] for k in (*TEXT_FILTERS, "status", "q", "range", "since", "until")}
    raw = {k: v for k, v in raw.items() if v}
    if "tenant" in params and params.get("tenant"):
        raw["tenant"] = params.get("tenant")  # kept in links, like the page's own tenant picker
    filters = Filters(**{k: raw.get(k, "") for k in (*TEXT_FILTERS, "q")}, raw=raw)
    status = raw.get("status", "")
    if status and status not in STATUSES:
        raise BadFilter(f"status must be one of {', '.join(STATUSES)}")
    filters.status = status
    if raw.get("range"):
        if raw["range"] not in RANGES:
            raise BadFilter(f"range must be one of {', '.join(RANGES)}")
        filters.range = raw["range"]
    filters.since = _when(raw.get("since", ""), "since")
    filters.until = _when(raw.get("until", ""), "until")
    try:
        filters.page = min(max(int(params.get("page") or 1), 1), MAX_PAGE)
    except ValueError:
        filters.page = 1
    return filters


def _chart(activity: Activity, value: str, kind: str, label: str, total_text: str) -> dict[str, Any]:
    """A small bar chart: one bar per bucket, in units of the SVG's viewBox."""
    values = [getattr(bucket, value) for bucket in activity.buckets]
    top = max(values, default=0) or 1
    bars = []
    for i, (bucket, amount) in enumerate(zip(activity.buckets, values, strict=True)):
        height = 0.0 if not amount else max(amount / top * (_CHART_HEIGHT - 2), 1.5)
        shown = f"${amount:.4f}" if value == "cost_usd" else str(amount)
        bars.append(
            {
                "x": i * _BAR,
                "y": round(_CHART_HEIGHT - height, 2),
                "width": _BAR - 1,
                "height": round(height, 2),
                "title": f"{bucket.start.strftime('%Y-%m-%d %H:%M')} UTC: {shown}",
            }
        )
    return {
        "kind": kind,
        "label": label,
        "total": total_text,
        "bars": bars,
        "width": max(len(bars), 1) * _BAR,
        "height": _CHART_HEIGHT,
    }


def _charts(activity: Activity) -> list[dict[str, Any]]:
    runs = sum(b.runs for b in activity.buckets)
    failed = sum(b.failed for b in activity.buckets)
    cost = sum(b.cost_usd for b in activity.buckets)
    return [
        _chart(activity, "runs", "runs", "Runs", str(runs)),
        _chart(activity, "failed", "failed", "Failed", str(failed)),
        _chart(activity, "cost_usd", "cost", "Cost", f"${cost:.4f}"),
    ]


def _bucket_text(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def _notice(request: Request, viewer: Any, message: str) -> HTMLResponse:
    return _page(request, viewer, "notice.html", status=400, title="Runs", message=message, active="runs")


@router.get("/")
def runs_view(request: Request) -> Response:
    """The runs, filtered by the query, with the charts of their range."""
    found = reader(request)
    if isinstance(found, Response):
        return found
    viewer, reads = found
    try:
        filters = parse_filters(request.query_params)
        since, until = filters.window(datetime.now(UTC))
    except BadFilter as exc:
        return _notice(request, viewer, str(exc))
    narrow = {
        "agent": filters.agent or None,
        "status": filters.status or None,
        "user": filters.user or None,
        "conversation": filters.conversation or None,
        "model": filters.model or None,
        "search": filters.q or None,
        "since": since,
        "until": until,
    }
    try:
        page = reads.runs(**narrow, skip=(filters.page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        activity = reads.activity(**narrow)
    except ValueError as exc:
        return _notice(request, viewer, str(exc))
    # Nothing to show, no filter, the first page: has the tenant any run at all (older ones)?
    anything = bool(page.runs) or filters.narrowed or filters.page > 1 or bool(reads.history(limit=1))
    context = {
        "filters": filters,
        "page": page,
        "charts": _charts(activity) if anything else [],
        "activity": activity,
        "bucket": _bucket_text(activity.bucket_seconds),
        "anything": anything,
        "running": any(run.status == "running" for run in page.runs),
        "ranges": [(key, label) for key, (label, _) in RANGES.items()],
        "range_text": "from {} to {}".format(since.strftime("%Y-%m-%d %H:%M"), until.strftime("%Y-%m-%d %H:%M UTC"))
        if filters.custom
        else RANGES[filters.range][0],
        "statuses": STATUSES,
        "first": page.skip + 1,
        "last": page.skip + len(page.runs),
        "newer": filters.query(page=filters.page - 1 if filters.page > 2 else None) if filters.page > 1 else None,
        "older": filters.query(page=filters.page + 1) if page.more else None,
    }
    if request.headers.get("hx-request") == "true":
        html = templates.get_template("runs_section.html").render(
            tenant=viewer.tenant, keyed=viewer.keyed, base_url=str(request.base_url).rstrip("/"), **context
        )
        return HTMLResponse(html)
    return _page(request, viewer, "runs.html", active="runs", **context)

"""What every page shares (who is looking, the read service over their tenant, the templates,
the 404 and "store unavailable" pages) and the routes of the agents list and of signing in with
an API key; the views are in :mod:`tracehouse.web.runs_page`, :mod:`tracehouse.web.run_page`
and :mod:`tracehouse.web.more_pages`.

Who sees what:

- on a server with API keys, a page shows only what the signed-in key's tenant owns; a request
  without a valid key is sent to ``/signin``, which keeps the key in an HttpOnly, SameSite=Strict
  cookie that the API and the live stream accept like the key itself
  (:func:`tracehouse.api.agents.request_tenant`);
- on a server without keys, the tenant is picked with ``?tenant=`` (remembered in a cookie),
  default: the default tenant.

Templates are autoescaped: every value from the data is shown as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from tracehouse import __version__
from tracehouse.api.agents import KEY_COOKIE, request_tenant, same_origin
from tracehouse.auth import Unauthenticated
from tracehouse.model import DEFAULT_TENANT
from tracehouse.store.reads import ReadService, duration_text
from tracehouse.store.reads import tenants as stored_tenants

router = APIRouter(include_in_schema=False)

_HERE = Path(__file__).parent
TENANT_COOKIE = "tracehouse_tenant"
_MAX_FORM_BYTES = 16 << 10
_MAX_TENANT = 200


def _moment(value: datetime | str) -> datetime:
    """A time from a response model: a datetime, or ISO 8601 text (UTC when it names no zone)."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc_iso(value: datetime | str) -> str:
    """``2026-05-01T12:00:00.250Z``: what the page's script turns into the viewer's local time."""
    moment = _moment(value).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _utc_text(value: datetime | str) -> str:
    return _moment(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(value: float | None) -> str:
    return duration_text(int((value or 0) * 1e9))


templates = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(
    utc_iso=_utc_iso,
    utc_text=_utc_text,
    duration=duration_text,
    seconds=_seconds,
    usd=lambda value: f"${value:.4f}",
    percent=lambda value: f"{value * 100:.0f}%",
)
templates.globals.update(version=__version__)


@dataclass
class Viewer:
    """Whose data a page shows."""

    tenant: str
    keyed: bool  # the server has API keys: the tenant is the signed-in key's
    picked: bool = False  # chosen by ?tenant= just now: remembered in the tenant cookie


def _local(path: str | None) -> str:
    """A path on this server to go back to after signing in; anything else is ``/``."""
    if not path or not path.startswith("/") or path.startswith(("//", "/\\")):
        return "/"
    return path


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _viewer(request: Request) -> Viewer | Response:
    auth = request.app.state.receiver.auth
    if auth.required:
        try:
            tenant, _ = request_tenant(auth, request.headers, request.cookies)
        except Unauthenticated:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            response = RedirectResponse(f"/signin?next={quote(target, safe='')}", status_code=303)
            if KEY_COOKIE in request.cookies:  # a key that is no longer (or never was) valid
                response.delete_cookie(KEY_COOKIE, path="/")
            return response
        return Viewer(tenant=tenant, keyed=True)
    picked = request.query_params.get("tenant")
    tenant = (picked if picked is not None else request.cookies.get(TENANT_COOKIE)) or DEFAULT_TENANT
    return Viewer(tenant=tenant[:_MAX_TENANT], keyed=False, picked=picked is not None)


def _page(request: Request, viewer: Viewer, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    store = request.app.state.writer.store
    tenants: list[str] = []
    if not viewer.keyed and store is not None:
        tenants = stored_tenants(store)
        if viewer.tenant not in tenants:
            tenants = sorted([*tenants, viewer.tenant])
    context.setdefault("active", "")
    html = templates.get_template(template).render(
        path=request.url.path,
        tenant=viewer.tenant,
        keyed=viewer.keyed,
        tenants=tenants,
        base_url=str(request.base_url).rstrip("/"),
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    if viewer.picked:
        response.set_cookie(
            TENANT_COOKIE, viewer.tenant, httponly=True, samesite="strict", secure=_secure(request), path="/"
        )
    return response


def _unavailable(request: Request, viewer: Viewer) -> HTMLResponse:
    return _page(
        request,
        viewer,
        "notice.html",
        status=503,
        title="Store unavailable",
        message="The store cannot be reached right now; what arrives waits in the spool. Try again shortly.",
    )


def reader(request: Request) -> tuple[Viewer, ReadService] | Response:
    """Who is looking and the read service over their tenant's data; or the response to send
    instead (the sign-in page for a request without a valid key, or "store unavailable")."""
    viewer = _viewer(request)
    if isinstance(viewer, Response):
        return viewer
    store = request.app.state.writer.store
    if store is None:
        return _unavailable(request, viewer)
    return viewer, ReadService(store, viewer.tenant)


def not_found(request: Request, viewer: Viewer, what: str, title: str = "Not found") -> HTMLResponse:
    """The 404 page for something the tenant does not have (unknown, or another tenant's)."""
    return _page(
        request,
        viewer,
        "notice.html",
        status=404,
        title=title,
        message=f"There is no {what} here{'' if viewer.keyed else f' (tenant {viewer.tenant})'}.",
    )


@router.get("/agents")
def agents_page(request: Request) -> Response:
    """Each agent's runs and outcomes, with a link to its page."""
    found = reader(request)
    if isinstance(found, Response):
        return found
    viewer, reads = found
    return _page(request, viewer, "agents.html", active="agents", agents=reads.stats(group_by="agent"))


def _signin_form(request: Request, next_path: str, error: str = "", status: int = 200) -> HTMLResponse:
    html = templates.get_template("signin.html").render(
        path=request.url.path, tenant="", keyed=True, tenants=[], next=next_path, error=error, active=""
    )
    return HTMLResponse(html, status_code=status)


@router.get("/signin")
def signin_page(request: Request, next: str | None = None) -> Response:
    """The sign-in form of a server with API keys (elsewhere: the runs)."""
    auth = request.app.state.receiver.auth
    next_path = _local(next)
    if not auth.required:
        return RedirectResponse(next_path, status_code=303)
    return _signin_form(request, next_path)


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Checks the key posted by the form; a valid one goes into the cookie."""
    if not same_origin(request.headers):
        return PlainTextResponse("sign in from this server's own page", status_code=403)
    auth = request.app.state.receiver.auth
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        return PlainTextResponse("the form is too large", status_code=413)
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    key = (form.get("key") or [""])[0].strip()
    next_path = _local((form.get("next") or ["/"])[0])
    if not auth.required:
        return RedirectResponse(next_path, status_code=303)
    try:
        auth.tenant(None, key)
    except Unauthenticated:
        return _signin_form(request, next_path, "That key is not valid on this server.", status=401)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(KEY_COOKIE, key, httponly=True, samesite="strict", secure=_secure(request), path="/")
    return response


@router.api_route("/signout", methods=["GET", "POST"])
def signout(request: Request) -> Response:
    """Forgets the key (and the picked tenant)."""
    if not same_origin(request.headers):
        return PlainTextResponse("sign out from this server's own page", status_code=403)
    target = "/signin" if request.app.state.receiver.auth.required else "/"
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(KEY_COOKIE, path="/")
    response.delete_cookie(TENANT_COOKIE, path="/")
    return response


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return FileResponse(_HERE / "static" / "favicon.svg", media_type="image/svg+xml")

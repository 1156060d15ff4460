"""The run page, ``/runs/{run_id}``: one run as a tree, a timeline, its replay, and where to
resume it from; beside the tree or the timeline, the selected node's detail.

- ``?view=tree|timeline|replay|resume`` (default ``tree``), ``&node={span_id}``: the node shown;
- the tree comes without payloads (:meth:`ReadService.run_tree`); a node's detail is fetched
  when it is opened, from ``/runs/{run_id}/nodes/{span_id}`` (a fragment for htmx;
  :meth:`ReadService.node`);
- a long tree shows its first :data:`NODES_SHOWN` nodes and a link to show more, which fetches
  the next page of rows from ``/runs/{run_id}/rows?view=&offset=`` (a fragment for htmx; only
  that page is made into nodes and rendered, :meth:`ReadService.run_tree` with a limit); without scripts the
  link opens the page with more nodes (``&shown=``); a payload longer than
  :data:`PAYLOAD_CHARS` is cut, with a link to show it all;
- a run still running grows as its spans arrive: ``static/run.js`` follows ``/ws/events`` for
  the run and fetches the tree section again.

An unknown run, or another tenant's, is a 404 page.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from tracehouse import replay
from tracehouse.responses import NotFound, RunTree
from tracehouse.store.reads import ReadService
from tracehouse.web.pages import _page, not_found, reader, templates

router = APIRouter(include_in_schema=False)

VIEWS = ("tree", "timeline", "replay", "resume")
NODES_SHOWN = 500  # the tree and the timeline show this many nodes, then "show more"
MAX_NODES_SHOWN = 100_000
PAYLOAD_CHARS = 4000  # a payload longer than this is cut, with "show all"
MAX_DEPTH_CLASS = 16


def _pretty(text: str) -> str:
    """JSON text indented; anything else as it is."""
    if not text or text.lstrip()[:1] not in ("{", "["):
        return text
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


templates.filters.update(
    pretty=_pretty,
    depth_class=lambda depth: f"depth-{min(depth, MAX_DEPTH_CLASS)}",
    usd6=lambda value: f"${value:.6f}".rstrip("0").rstrip(".") if value else "$0",
)
templates.globals.update(PAYLOAD_CHARS=PAYLOAD_CHARS)


def _int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(value))) if value is not None else default
    except ValueError:
        return default


def _bars(tree: RunTree) -> tuple[list[dict[str, float]], int]:
    """Where each node's bar lies on the run's time axis, in percent of the run's span."""
    total = max(tree.extent_ns, 1)
    bars = []
    for node in tree.nodes:
        x = 100 * node.offset_ns / total
        width = max(100 * node.duration_ns / total, 0.3)
        bars.append({"x": round(min(x, 99.7), 3), "width": round(min(width, 100 - min(x, 99.7)), 3)})
    return bars, total


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str) -> Response:
    found = reader(request)
    if isinstance(found, Response):
        return found
    viewer, reads = found
    params = request.query_params
    view = params.get("view") if params.get("view") in VIEWS else "tree"
    shown = _int(params.get("shown"), NODES_SHOWN, 1, MAX_NODES_SHOWN)
    try:
        tree = reads.run_tree(run_id, limit=shown)
    except NotFound:
        return not_found(request, viewer, f"run {run_id}", title="Run not found")
    selected = params.get("node") or ""
    context: dict[str, Any] = {
        "run": tree,
        "view": view,
        "nodes": tree.nodes,
        "shown": len(tree.nodes),
        "more": max(0, tree.node_count - len(tree.nodes)),
        "step": NODES_SHOWN,
        "selected": selected,
        "detail": None,
        "full": params.get("full") == "1",
    }
    if view in ("tree", "timeline"):
        bars, total = _bars(tree)
        context.update(bars=bars, total_ns=total)
        if selected:
            try:
                context["detail"] = reads.node(run_id, selected)
            except NotFound:
                context["detail_missing"] = selected
    elif view == "replay":
        mode = params.get("mode") if params.get("mode") in ("full", "transcript") else "full"
        replayed = reads.events(run_id, replay.Mode(mode))
        context.update(
            mode=mode, events=replayed.events[:shown], events_more=max(0, len(replayed.events) - shown), replay=replayed
        )
    else:
        context.update(_resume(reads, run_id, params.get("until_node"), params.get("until_checkpoint")))
    return _page(request, viewer, "run.html", title=f"Run {run_id}", **context)


def _resume(reads: ReadService, run_id: str, until_node: str | None, until_checkpoint: str | None) -> dict[str, Any]:
    events = reads.events(run_id).events
    checkpoints = [e for e in events if e.kind == "checkpoint"]
    with_events = {e.span_id for e in events}
    until_node = until_node or None
    until_checkpoint = until_checkpoint or None
    if until_checkpoint:
        until_node = None
    error = ""
    try:
        resumed = reads.resume(run_id, until_node, until_checkpoint)
    except NotFound as exc:
        error = str(exc.args[0]) if exc.args else "not found"
        resumed = None
    state = ""
    if resumed is not None and resumed.checkpoint is not None:
        state = _pretty(resumed.checkpoint.state)
    args = [repr(run_id)]
    if until_checkpoint:
        args.append(f"until_checkpoint={until_checkpoint!r}")
    elif until_node:
        args.append(f"until_node={until_node!r}")
    return {
        "checkpoints": checkpoints,
        "with_events": with_events,
        "until_node": until_node or "",
        "until_checkpoint": until_checkpoint or "",
        "resumed": resumed,
        "resume_json": json.dumps(resumed.model_dump(mode="json"), indent=2, ensure_ascii=False) if resumed else "",
        "checkpoint_state": state,
        "resume_error": error,
        "resume_call": ", ".join(args),
    }


@router.get("/runs/{run_id}/rows")
def tree_rows(request: Request, run_id: str) -> Response:
    """The next page of a long tree's (or timeline's) rows, from ``offset``, and the link to the
    page after it: what "show more" appends."""
    found = reader(request)
    if isinstance(found, Response):
        return found
    _, reads = found
    params = request.query_params
    view = params.get("view") if params.get("view") in ("tree", "timeline") else "tree"
    offset = _int(params.get("offset"), 0, 0, MAX_NODES_SHOWN)
    try:
        tree = reads.run_tree(run_id, offset=offset, limit=NODES_SHOWN)
    except NotFound:
        return HTMLResponse("", 404)
    shown = offset + len(tree.nodes)
    bars, _ = _bars(tree)
    html = templates.get_template("run_rows.html").render(
        run=tree,
        view=view,
        nodes=tree.nodes,
        bars=bars,
        shown=shown,
        more=max(0, tree.node_count - shown),
        step=NODES_SHOWN,
        selected=params.get("node") or "",
    )
    return HTMLResponse(html)


@router.get("/runs/{run_id}/nodes/{span_id}")
def node_detail(request: Request, run_id: str, span_id: str) -> Response:
    """The node detail fragment (what the page's tree opens beside it)."""
    found = reader(request)
    if isinstance(found, Response):
        return found
    viewer, reads = found
    try:
        detail = reads.node(run_id, span_id)
    except NotFound:
        return HTMLResponse('<section id="node-detail" class="detail"><p>No such node.</p></section>', 404)
    full = request.query_params.get("full") == "1"
    view = request.query_params.get("view") if request.query_params.get("view") in VIEWS else "tree"
    html = templates.get_template("run_node.html").render(
        detail=detail, run_id=run_id, full=full, view=view, keyed=viewer.keyed, tenant=viewer.tenant
    )
    return HTMLResponse(html)

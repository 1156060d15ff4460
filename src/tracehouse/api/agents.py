"""``/api/v1/agents/history`` and ``/api/v1/agents/logs``: the shapes the first users script
against, kept exactly. Both are tenant-scoped: with API keys, the key names the tenant; without,
``?tenant=`` may (default: the default tenant). Another tenant's run is a 404, like an unknown one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel

from tracehouse.ingest.receiver import Auth, Unauthenticated
from tracehouse.model import DEFAULT_TENANT, Node, Run, Status
from tracehouse.store import Store, queries

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])

# The statuses these endpoints speak: "success" is a completed run or node.
_STATUS = {
    Status.COMPLETED: "success",
    Status.FAILED: "failed",
    Status.RUNNING: "running",
    Status.CANCELLED: "cancelled",
    Status.INCOMPLETE: "incomplete",
    Status.PENDING: "running",
}


class HistoryItem(BaseModel):
    run_id: str
    status: str  # success | failed | running | cancelled | incomplete
    started_at: str  # ISO 8601, UTC
    duration: str  # "45s", "1.5s"
    input: str  # a short preview
    output: str  # a short preview
    node_count: int
    tokens_used: int
    cost_cents: float


class LogNode(BaseModel):
    id: str
    type: str
    input: str
    output: str
    time: str  # the node's duration, like "1.5s"
    status: str
    error_message: str
    metadata: dict[str, Any]


class LogError(BaseModel):
    node_id: str
    type: str
    message: str


class LogSummary(BaseModel):
    total_nodes: int
    successful_nodes: int
    failed_nodes: int
    total_duration: str
    tokens_used: int
    cost_cents: float


class LogsResponse(BaseModel):
    run_id: str
    nodes: list[LogNode]
    errors: list[LogError]
    final_output: str
    summary: LogSummary


def duration_text(ns: int) -> str:
    """A duration like "45s", "1.5s" or "0.002s": whole seconds from 10 s, tenths from 0.1 s,
    milliseconds below (at least "0.001s" for any work done)."""
    seconds = ns / 1e9
    if seconds >= 10:
        return f"{seconds:.0f}s"
    if seconds >= 0.1 or ns == 0:
        return f"{seconds:.1f}".rstrip("0").rstrip(".") + "s"
    return f"{max(seconds, 0.001):.3f}".rstrip("0") + "s"


def _cents(usd: float) -> float:
    return round(usd * 100, 6)


# The web page's sign-in keeps the API key in this cookie (HttpOnly, SameSite=Strict), so the
# page's own requests and its WebSocket authenticate like a client sending the key.
KEY_COOKIE = "tracehouse_key"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def same_origin(headers: Mapping[str, str]) -> bool:
    """Whether a browser's request comes from a page of this server: its Origin, when it sends
    one (browsers do on WebSockets and on every POST, PUT, DELETE), names the Host it asks."""
    origin = headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == headers.get("host", "").lower()


def request_tenant(
    auth: Auth, headers: Mapping[str, str], cookies: Mapping[str, str], api_key: str | None = None
) -> tuple[str, bool]:
    """The tenant the request's key names ("" on a server without keys) and whether the key came
    from the sign-in cookie. A key sent as ``Authorization: Bearer``, ``x-api-key`` (or
    ``api_key``) decides; the cookie only counts when none is sent. Raises Unauthenticated."""
    authorization = headers.get("authorization")
    offered = api_key or headers.get("x-api-key")
    by_cookie = auth.required and not authorization and not offered and KEY_COOKIE in cookies
    if by_cookie:
        offered = cookies[KEY_COOKIE]
    return auth.tenant(authorization, offered), by_cookie


def keyed_tenant(request: Request) -> str:
    """The tenant the request's API key (or the page's sign-in cookie) names; "" on a server
    without keys. 401 otherwise; 403 for a change asked by a page of another origin with the
    cookie."""
    try:
        tenant, by_cookie = request_tenant(request.app.state.receiver.auth, request.headers, request.cookies)
    except Unauthenticated as exc:
        raise HTTPException(401, str(exc)) from None
    if by_cookie and request.method not in _SAFE_METHODS and not same_origin(request.headers):
        raise HTTPException(403, "a change signed by the page's cookie must come from the page's own origin")
    return tenant


def read_scope(request: Request, tenant: str | None = Query(None, description="without API keys only")) -> tuple:
    """The store and the tenant of a read request."""
    writer = request.app.state.writer
    keyed = keyed_tenant(request)
    if writer.store is None:
        raise HTTPException(503, "the store cannot be reached; try again later")
    return writer.store, keyed or tenant or DEFAULT_TENANT


@router.get("/history", response_model=list[HistoryItem], summary="Runs, newest first")
def history(
    scope: tuple[Store, str] = Depends(read_scope),
    agent_id: str | None = Query(None, description="the agent's name"),
    skip: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
) -> list[HistoryItem]:
    store, tenant = scope
    runs = queries.list_runs(store, tenant, agent=agent_id or None, limit=limit, offset=skip)
    return [
        HistoryItem(
            run_id=run.run_id,
            status=_STATUS[run.status],
            started_at=run.started_at.isoformat(),
            duration=duration_text(run.duration_ns),
            input=run.input_preview,
            output=run.output_preview,
            node_count=run.node_count,
            tokens_used=run.usage.total_tokens,
            cost_cents=_cents(run.cost_usd),
        )
        for run in runs
    ]


def _log_node(node: Node) -> LogNode:
    metadata: dict[str, Any] = {"name": node.name, "started_at": node.started_at.isoformat()}
    if node.parent_span_id:
        metadata["parent_id"] = node.parent_span_id
    if node.run_root:  # a sub-agent run inside this one
        metadata["run_id"] = node.run_id
        metadata["agent"] = node.agent_name
    for key, value in (("model", node.model), ("provider", node.provider), ("error_type", node.error_type)):
        if value:
            metadata[key] = value
    if node.usage.total_tokens:
        metadata["input_tokens"] = node.usage.input_tokens
        metadata["output_tokens"] = node.usage.output_tokens
    if node.cost_usd:
        metadata["cost_cents"] = _cents(node.cost_usd)
    return LogNode(
        id=node.span_id,
        type=node.type.value,
        input=node.input,
        output=node.output,
        time=duration_text(node.duration_ns),
        status=_STATUS[node.status],
        error_message=node.status_message,
        metadata=metadata,
    )


@router.get("/logs", response_model=LogsResponse, summary="What happened inside one run")
def logs(run_id: str, scope: tuple[Store, str] = Depends(read_scope)) -> LogsResponse:
    store, tenant = scope
    run: Run | None = queries.run_summary(store, tenant, run_id, queries.RUN_TOTALS)
    if run is None:
        raise HTTPException(404, f"run {run_id} not found")
    found, final_output = queries.run_log_nodes(store, tenant, run)
    nodes = [_log_node(n) for n in found]
    return LogsResponse(
        run_id=run.run_id,
        nodes=nodes,
        errors=[
            LogError(node_id=n.id, type=n.metadata.get("error_type", ""), message=n.error_message)
            for n in nodes
            if n.status == "failed"
        ],
        final_output=final_output,
        summary=LogSummary(
            total_nodes=len(nodes),
            successful_nodes=sum(1 for n in nodes if n.status == "success"),
            failed_nodes=sum(1 for n in nodes if n.status == "failed"),
            total_duration=duration_text(run.duration_ns),
            tokens_used=run.usage.total_tokens,
            cost_cents=_cents(run.cost_usd),
        ),
    )

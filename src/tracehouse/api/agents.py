"""``/api/v1/agents/history`` and ``/api/v1/agents/logs``: the shapes the first users script
against, kept exactly (the history items carry the agent's name besides). Both are
tenant-scoped: with API keys, the key names the tenant; without, ``?tenant=`` may (default: the
default tenant). Another tenant's run is a 404, like an unknown one.

Every read route answers through the read service (:mod:`tracehouse.store.reads`) of the
request's tenant (:func:`read_service`); the app answers its ``NotFound`` with a 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from tracehouse.auth import Auth, Unauthenticated
from tracehouse.model import DEFAULT_TENANT
from tracehouse.responses import HistoryItem, LogsResponse
from tracehouse.store import Store
from tracehouse.store.reads import MAX_HISTORY_PAGE, ReadService

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])


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


def read_service(scope: tuple[Store, str] = Depends(read_scope)) -> ReadService:
    """The read service of the request's tenant."""
    store, tenant = scope
    return ReadService(store, tenant)


Reads = Annotated[ReadService, Depends(read_service)]


@router.get("/history", response_model=list[HistoryItem], summary="Runs, newest first")
def history(
    reads: Reads,
    agent_id: str | None = Query(None, description="the agent's name"),
    skip: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=MAX_HISTORY_PAGE),
) -> list[HistoryItem]:
    return reads.history(agent=agent_id, skip=skip, limit=limit)


@router.get("/logs", response_model=LogsResponse, summary="What happened inside one run")
def logs(run_id: str, reads: Reads) -> LogsResponse:
    return reads.logs(run_id)

"""``/api/v1/agents/history`` and ``/api/v1/agents/logs``: the shapes the first users script
against, kept exactly (the history items carry the agent's name besides). Both are
tenant-scoped: with API keys, the key names the tenant; without, ``?tenant=`` may (default: the
default tenant). Another tenant's run is a 404, like an unknown one.

Every read route answers through the read service (:mod:`tracehouse.store.reads`) of the
request's tenant (:func:`read_service`); the app answers its ``NotFound`` with a 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from tracehouse.ingest.receiver import Unauthenticated
from tracehouse.model import DEFAULT_TENANT
from tracehouse.responses import HistoryItem, LogsResponse
from tracehouse.store import Store
from tracehouse.store.reads import MAX_HISTORY_PAGE, ReadService

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])


def keyed_tenant(request: Request) -> str:
    """The tenant the request's API key names; "" on a server without keys. 401 otherwise."""
    try:
        return request.app.state.receiver.auth.tenant(
            request.headers.get("authorization"), request.headers.get("x-api-key")
        )
    except Unauthenticated as exc:
        raise HTTPException(401, str(exc)) from None


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

"""The reads behind the conversation, agent and compare pages, for the API and the client too:
``/api/v1/conversations/{id}/runs``, ``/api/v1/agents/{name}/overview`` and
``/api/v1/compare?a=&b=``. Tenant-scoped like every read; what the tenant does not have is a 404."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from tracehouse import replay
from tracehouse.api.agents import Reads
from tracehouse.responses import AgentOverview, Comparison, Conversation

router = APIRouter(prefix="/api/v1")


@router.get(
    "/conversations/{conversation_id}/runs",
    response_model=Conversation,
    tags=["replay"],
    summary="Every run of a conversation with its events",
)
def conversation_runs(conversation_id: str, mode: replay.Mode = replay.Mode.FULL, *, reads: Reads) -> Conversation:
    return reads.conversation_runs(conversation_id, mode)


@router.get(
    "/agents/{name}/overview",
    response_model=AgentOverview,
    tags=["statistics"],
    summary="One agent: outcomes, timeline, slowest and failing nodes, models",
)
def agent_overview(
    name: str, since: datetime | None = None, until: datetime | None = None, *, reads: Reads
) -> AgentOverview:
    return reads.agent(name, since, until)


@router.get("/compare", response_model=Comparison, tags=["replay"], summary="Two runs' steps aligned side by side")
def compare(
    a: str = Query(..., description="a run id"), b: str = Query(..., description="another run id"), *, reads: Reads
) -> Comparison:
    """Each run's steps in order (sub-agent runs as one step), aligned by type and name; each
    row says whether the pair is the same, changed (and what: input, output, model, status,
    tokens, cost) or a step of one run only."""
    return reads.compare(a, b)

"""Replay and resume: ``/api/v1/runs/{run_id}/events``, ``/api/v1/conversations/{id}/events``
and ``/api/v1/runs/{run_id}/resume``. Tenant-scoped like every read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from tracehouse import replay
from tracehouse.api.agents import read_scope
from tracehouse.model import Event
from tracehouse.store import Store, queries

router = APIRouter(prefix="/api/v1", tags=["replay"])


class ReplayEvent(BaseModel):
    timestamp: datetime
    kind: str
    role: str
    name: str
    content: str
    tool_call_id: str
    run_id: str
    span_id: str
    seq: int


class Replay(BaseModel):
    mode: str
    events: list[ReplayEvent]


class Checkpoint(BaseModel):
    id: str
    state: str  # as recorded: usually JSON
    timestamp: datetime


class Resume(BaseModel):
    run_id: str
    messages: list[dict[str, Any]]  # OpenAI chat messages
    checkpoint: Checkpoint | None


def _replay(events: list[Event], mode: replay.Mode) -> Replay:
    return Replay(
        mode=mode.value,
        events=[
            ReplayEvent(
                timestamp=e.timestamp,
                kind=e.kind.value,
                role=e.role,
                name=e.name,
                content=e.content,
                tool_call_id=e.tool_call_id,
                run_id=e.run_id,
                span_id=e.span_id,
                seq=e.seq,
            )
            for e in replay.replay(events, mode)
        ],
    )


def _run_or_404(store: Store, tenant: str, run_id: str) -> None:
    if queries.run_summary(store, tenant, run_id) is None:
        raise HTTPException(404, f"run {run_id} not found")


@router.get("/runs/{run_id}/events", response_model=Replay, summary="The ordered events of a run")
def run_events(run_id: str, mode: replay.Mode = replay.Mode.FULL, scope: tuple = Depends(read_scope)) -> Replay:
    store, tenant = scope
    _run_or_404(store, tenant, run_id)
    return _replay(queries.run_events(store, tenant, run_id), mode)


@router.get(
    "/conversations/{conversation_id}/events",
    response_model=Replay,
    summary="The ordered events of every run of a conversation",
)
def conversation_events(
    conversation_id: str, mode: replay.Mode = replay.Mode.FULL, scope: tuple = Depends(read_scope)
) -> Replay:
    store, tenant = scope
    events = queries.conversation_events(store, tenant, conversation_id)
    if not events:
        raise HTTPException(404, f"conversation {conversation_id} not found")
    return _replay(events, mode)


@router.get("/runs/{run_id}/resume", response_model=Resume, summary="The messages to resume a run from")
def resume(
    run_id: str,
    until_node: str | None = Query(None, description="a node (span) id: history up to and including it"),
    until_checkpoint: str | None = Query(None, description="a checkpoint id: history up to it"),
    scope: tuple = Depends(read_scope),
) -> Resume:
    store, tenant = scope
    _run_or_404(store, tenant, run_id)
    try:
        kept, checkpoint = replay.resume_point(queries.run_events(store, tenant, run_id), until_node, until_checkpoint)
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0])) from None
    return Resume(
        run_id=run_id,
        messages=replay.openai_messages(kept),
        checkpoint=Checkpoint(id=checkpoint.name, state=checkpoint.content, timestamp=checkpoint.timestamp)
        if checkpoint
        else None,
    )

"""Replay and resume: ``/api/v1/runs/{run_id}/events``, ``/api/v1/conversations/{id}/events``
and ``/api/v1/runs/{run_id}/resume``. Tenant-scoped like every read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from tracehouse import replay
from tracehouse.api.agents import read_scope
from tracehouse.model import Event, Run
from tracehouse.store import Store, queries, retention

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


def _run_or_404(store: Store, tenant: str, run_id: str) -> Run:
    """The run's time and totals (what bounds the reads of its events), or 404."""
    run = queries.run_summary(store, tenant, run_id, queries.RUN_TOTALS)
    if run is None:
        raise HTTPException(404, f"run {run_id} not found")
    return run


@router.get("/runs/{run_id}/events", response_model=Replay, summary="The ordered events of a run")
def run_events(run_id: str, mode: replay.Mode = replay.Mode.FULL, scope: tuple = Depends(read_scope)) -> Replay:
    store, tenant = scope
    run = _run_or_404(store, tenant, run_id)
    return _replay(queries.run_events(store, tenant, run_id, run), mode)


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
    run = _run_or_404(store, tenant, run_id)
    try:
        events = queries.run_events(store, tenant, run_id, run)
        kept, checkpoint = replay.resume_point(events, until_node, until_checkpoint)
    except KeyError as exc:
        raise HTTPException(404, str(exc.args[0])) from None
    return Resume(
        run_id=run_id,
        messages=replay.openai_messages(kept),
        checkpoint=Checkpoint(id=checkpoint.name, state=checkpoint.content, timestamp=checkpoint.timestamp)
        if checkpoint
        else None,
    )


class Deleted(BaseModel):
    removed: dict[str, int]  # rows by table
    total: int


def _deleted(removed: retention.Removed) -> Deleted:
    return Deleted(removed=removed.rows, total=removed.total)


@router.delete("/runs/{run_id}", response_model=Deleted, tags=["retention"], summary="Forget a run")
def delete_run(run_id: str, scope: tuple = Depends(read_scope)) -> Deleted:
    """Deletes the run and its sub-agent runs: spans, events, logs and run rows."""
    store, tenant = scope
    _run_or_404(store, tenant, run_id)
    return _deleted(retention.delete_run(store, tenant, run_id))


@router.delete("/users/{user_id}", response_model=Deleted, tags=["retention"], summary="Forget a user")
def delete_user(user_id: str, scope: tuple = Depends(read_scope)) -> Deleted:
    """Deletes every run the user started (with sub-agent runs) and any span naming the user."""
    store, tenant = scope
    return _deleted(retention.delete_user(store, tenant, user_id))


class RetentionSettings(BaseModel):
    retention_days: int | None = None  # None: the server's default
    payload_retention_days: int | None = None


@router.get("/retention", response_model=RetentionSettings, tags=["retention"], summary="The tenant's retention")
def get_retention(scope: tuple = Depends(read_scope)) -> RetentionSettings:
    store, tenant = scope
    current = retention.get_retention(store, tenant)
    return RetentionSettings(
        retention_days=current.retention_days, payload_retention_days=current.payload_retention_days
    )


@router.put("/retention", response_model=RetentionSettings, tags=["retention"], summary="Set the tenant's retention")
def put_retention(settings: RetentionSettings, scope: tuple = Depends(read_scope)) -> RetentionSettings:
    """Applies to rows stored from now on; rows already stored keep the retention they had."""
    store, tenant = scope
    if settings.retention_days is None:
        raise HTTPException(422, "retention_days is required")
    try:
        saved = retention.set_retention(store, tenant, settings.retention_days, settings.payload_retention_days)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return RetentionSettings(retention_days=saved.retention_days, payload_retention_days=saved.payload_retention_days)


@router.post("/retention/cleanup", response_model=Deleted, tags=["retention"], summary="Apply retention now")
def cleanup(scope: tuple = Depends(read_scope)) -> Deleted:
    """Drops what has outlived its retention now rather than at the next merges (all tenants)."""
    store, _ = scope
    return _deleted(retention.cleanup(store))

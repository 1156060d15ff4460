"""Replay and resume: ``/api/v1/runs/{run_id}/events``, ``/api/v1/conversations/{id}/events``
and ``/api/v1/runs/{run_id}/resume``; deletion and retention. Tenant-scoped like every read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from tracehouse import replay
from tracehouse.api.agents import Reads
from tracehouse.responses import Activity, Deleted, NodeDetail, Replay, Resume, RetentionSettings, RunsPage, RunTree
from tracehouse.store.reads import MAX_HISTORY_PAGE

router = APIRouter(prefix="/api/v1", tags=["replay"])


@router.get("/runs/{run_id}/events", response_model=Replay, summary="The ordered events of a run")
def run_events(run_id: str, mode: replay.Mode = replay.Mode.FULL, *, reads: Reads) -> Replay:
    return reads.events(run_id, mode)


@router.get(
    "/conversations/{conversation_id}/events",
    response_model=Replay,
    summary="The ordered events of every run of a conversation",
)
def conversation_events(conversation_id: str, mode: replay.Mode = replay.Mode.FULL, *, reads: Reads) -> Replay:
    return reads.conversation(conversation_id, mode)


@router.get("/runs/{run_id}/resume", response_model=Resume, summary="The messages to resume a run from")
def resume(
    run_id: str,
    until_node: str | None = Query(None, description="a node (span) id: history up to and including it"),
    until_checkpoint: str | None = Query(None, description="a checkpoint id: history up to it"),
    *,
    reads: Reads,
) -> Resume:
    return reads.resume(run_id, until_node, until_checkpoint)


@router.delete("/runs/{run_id}", response_model=Deleted, tags=["retention"], summary="Forget a run")
def delete_run(run_id: str, reads: Reads) -> Deleted:
    """Deletes the run and its sub-agent runs: spans, events, logs and run rows."""
    return reads.delete_run(run_id)


@router.delete("/users/{user_id}", response_model=Deleted, tags=["retention"], summary="Forget a user")
def delete_user(user_id: str, reads: Reads) -> Deleted:
    """Deletes every run the user started (with sub-agent runs) and any span naming the user."""
    return reads.delete_user(user_id)


@router.get("/retention", response_model=RetentionSettings, tags=["retention"], summary="The tenant's retention")
def get_retention(reads: Reads) -> RetentionSettings:
    return reads.retention()


@router.put("/retention", response_model=RetentionSettings, tags=["retention"], summary="Set the tenant's retention")
def put_retention(settings: RetentionSettings, reads: Reads) -> RetentionSettings:
    """Applies to rows stored from now on; rows already stored keep the retention they had."""
    if settings.retention_days is None:
        raise HTTPException(422, "retention_days is required")
    try:
        return reads.set_retention(settings.retention_days, settings.payload_retention_days)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


@router.post("/retention/cleanup", response_model=Deleted, tags=["retention"], summary="Apply retention now")
def cleanup(reads: Reads) -> Deleted:
    """Drops what has outlived its retention now rather than at the next merges (all tenants)."""
    return reads.cleanup()


# --- the runs page ---------------------------------------------------------------------------


def _bad_request(exc: ValueError) -> HTTPException:
    return HTTPException(422, str(exc))


@router.get("/runs", response_model=RunsPage, tags=["runs"], summary="Top-level runs, filtered, newest first")
def list_runs(
    agent: str | None = None,
    status: str | None = Query(None, description="completed (or success), failed, running, cancelled, incomplete"),
    user: str | None = None,
    conversation: str | None = None,
    model: str | None = Query(None, description="runs with an LLM call of this model (sub-agents' included)"),
    search: str | None = Query(None, description="text in the run's input or output preview, any case"),
    since: Annotated[datetime | None, Query(description="runs started at or after (default: until - 7 days)")] = None,
    until: Annotated[datetime | None, Query(description="runs started before (default: now)")] = None,
    skip: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=MAX_HISTORY_PAGE),
    *,
    reads: Reads,
) -> RunsPage:
    try:
        return reads.runs(agent, status, user, conversation, model, search, since, until, skip, limit)
    except ValueError as exc:
        raise _bad_request(exc) from None


@router.get("/activity", response_model=Activity, tags=["runs"], summary="Runs, failures and cost over time")
def activity(
    agent: str | None = None,
    status: str | None = None,
    user: str | None = None,
    conversation: str | None = None,
    model: str | None = None,
    search: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    reads: Reads,
) -> Activity:
    """Per bucket of run start (a round size, at most 60 buckets): the runs ``/api/v1/runs``
    lists with the same filters, the failed ones, and their cost."""
    try:
        return reads.activity(agent, status, user, conversation, model, search, since, until)
    except ValueError as exc:
        raise _bad_request(exc) from None


# --- the run page ---


@router.get("/runs/{run_id}/tree", response_model=RunTree, summary="A run's nodes, nested, without payloads")
def run_tree(
    run_id: str,
    offset: int = Query(0, ge=0, description="the first node of the page, in tree order"),
    limit: int | None = Query(None, ge=1, le=100_000, description="nodes in the page (default: every node)"),
    *,
    reads: Reads,
) -> RunTree:
    return reads.run_tree(run_id, offset, limit)


@router.get("/runs/{run_id}/nodes/{span_id}", response_model=NodeDetail, summary="One node of a run, whole")
def run_node(run_id: str, span_id: str, reads: Reads) -> NodeDetail:
    """Its payloads, its messages as chat, its error, and every raw attribute of its span."""
    return reads.node(run_id, span_id)

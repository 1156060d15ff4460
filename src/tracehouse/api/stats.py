"""``/api/v1/stats``, ``/api/v1/usage``, ``/api/v1/nodes/performance``: the numbers, per tenant,
over a time window (``since`` / ``until``, ISO 8601; default: everything kept)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query

from tracehouse.api.agents import read_scope
from tracehouse.store import queries

router = APIRouter(prefix="/api/v1", tags=["statistics"])


@router.get("/stats", summary="Run statistics per agent, user or tenant")
def stats(
    group_by: Literal["agent", "user", "tenant"] = "agent",
    since: datetime | None = None,
    until: datetime | None = None,
    scope: tuple = Depends(read_scope),
) -> list[dict[str, Any]]:
    """Per group: runs, completed, failed, cancelled, running, incomplete, success_rate
    (completed out of the runs no longer running, incomplete ones included), p50_seconds and
    p95_seconds (runs whose root span arrived), avg_nodes, llm_calls, input_tokens,
    output_tokens, cost_usd."""
    store, tenant = scope
    return queries.stats(store, tenant, group_by=group_by, since=since, until=until)


@router.get("/usage", summary="LLM usage by model, provider, agent, user or run")
def usage(
    by: Literal["model", "provider", "agent", "user", "run"] = "model",
    since: datetime | None = None,
    until: datetime | None = None,
    scope: tuple = Depends(read_scope),
) -> list[dict[str, Any]]:
    """Per group: llm_calls, input_tokens, output_tokens, cache_read_tokens, reasoning_tokens,
    cost_usd; most expensive first."""
    store, tenant = scope
    return queries.usage(store, tenant, by=by, since=since, until=until)


@router.get("/nodes/performance", summary="The slowest and most failing nodes")
def node_performance(
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(20, ge=1, le=500),
    scope: tuple = Depends(read_scope),
) -> list[dict[str, Any]]:
    """Per node name and type: executions, failures, failure_rate, p50_seconds, p95_seconds;
    slowest (p95) first."""
    store, tenant = scope
    return queries.node_performance(store, tenant, since=since, until=until, limit=limit)

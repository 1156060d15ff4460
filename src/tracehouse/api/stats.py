"""``/api/v1/stats``, ``/api/v1/usage``, ``/api/v1/nodes/performance``: the numbers, per tenant,
over a time window (``since`` / ``until``, ISO 8601; default: everything kept)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query

from tracehouse.api.agents import Reads
from tracehouse.store.reads import MAX_NODE_PERFORMANCE_ROWS

router = APIRouter(prefix="/api/v1", tags=["statistics"])


@router.get("/stats", summary="Run statistics per agent, user or tenant")
def stats(
    group_by: Literal["agent", "user", "tenant"] = "agent",
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    reads: Reads,
) -> list[dict[str, Any]]:
    """Per group: runs, completed, failed, cancelled, running, incomplete, success_rate
    (completed out of the runs no longer running, incomplete ones included), p50_seconds and
    p95_seconds (runs whose root span arrived), avg_nodes, llm_calls, input_tokens,
    output_tokens, cost_usd."""
    return reads.stats(group_by, since, until)


@router.get("/usage", summary="LLM usage by model, provider, agent, user or run")
def usage(
    by: Literal["model", "provider", "agent", "user", "run"] = "model",
    since: datetime | None = None,
    until: datetime | None = None,
    agent: str | None = Query(None, description="only the LLM calls of this agent's runs"),
    *,
    reads: Reads,
) -> list[dict[str, Any]]:
    """Per group: llm_calls, input_tokens, output_tokens, cache_read_tokens, reasoning_tokens,
    cost_usd; most expensive first."""
    return reads.usage(by, since, until, agent)


@router.get("/nodes/performance", summary="The slowest and most failing nodes")
def node_performance(
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = Query(20, ge=1, le=MAX_NODE_PERFORMANCE_ROWS),
    agent: str | None = Query(None, description="only the nodes of this agent's runs"),
    *,
    reads: Reads,
) -> list[dict[str, Any]]:
    """Per node name and type: executions, failures, failure_rate, p50_seconds, p95_seconds;
    slowest (p95) first."""
    return reads.node_performance(limit, since, until, agent)

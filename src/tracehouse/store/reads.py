"""The read service: one tenant's reads over the store, answered with the response models.

Every face reads through it: the HTTP API's routes (``api/``), the web page, and the CLI when
no server answers. The Python client (:class:`tracehouse.client.Client`) offers the same
operations, by the same names and parameters, over HTTP (``tests/test_reads.py`` keeps them
in step).

>>> reads = ReadService(store, "acme")
>>> reads.history(agent="planner", limit=10)[0].status
'success'
>>> reads.logs("no-such-run")
Traceback (most recent call last):
tracehouse.responses.NotFound: run no-such-run not found

A method per operation: it reads through :mod:`tracehouse.store.queries` (or
:mod:`~tracehouse.store.retention`), which bind every value as a parameter, and shapes the rows
into a model of :mod:`tracehouse.responses`. What does not exist for the tenant raises
:class:`~tracehouse.responses.NotFound`; an argument out of range raises ``ValueError``. A new
read (a run's tree, a node's detail) is one more method here, its model in ``responses``, and
the same method on the client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tracehouse import replay
from tracehouse.model import DEFAULT_TENANT, Event, Node, Run, Status
from tracehouse.responses import (
    Checkpoint,
    Deleted,
    HistoryItem,
    LogError,
    LogNode,
    LogsResponse,
    LogSummary,
    NotFound,
    Replay,
    ReplayEvent,
    Resume,
    RetentionSettings,
)
from tracehouse.store import Store, queries, retention

__all__ = ["MAX_HISTORY_PAGE", "MAX_NODE_PERFORMANCE_ROWS", "NotFound", "ReadService", "duration_text"]

MAX_HISTORY_PAGE = 1000  # runs in one page of the history
MAX_NODE_PERFORMANCE_ROWS = 500

# The statuses the responses speak: "success" is a completed run or node.
_STATUS = {
    Status.COMPLETED: "success",
    Status.FAILED: "failed",
    Status.RUNNING: "running",
    Status.CANCELLED: "cancelled",
    Status.INCOMPLETE: "incomplete",
    Status.PENDING: "running",
}


class ReadService:
    """The reads and deletions of one tenant of an open store (which it does not close)."""

    def __init__(self, store: Store, tenant: str | None = None):
        self.store = store
        self.tenant = tenant or DEFAULT_TENANT

    # --- runs ------------------------------------------------------------------------------------

    def history(self, agent: str | None = None, skip: int = 0, limit: int = 100) -> list[HistoryItem]:
        """Runs, newest first (sub-agent runs too), of one agent or of all."""
        if skip < 0 or not 1 <= limit <= MAX_HISTORY_PAGE:
            raise ValueError(f"skip must be at least 0 and limit 1 to {MAX_HISTORY_PAGE}")
        runs = queries.list_runs(self.store, self.tenant, agent=agent or None, limit=limit, offset=skip)
        return [_history_item(run) for run in runs]

    def logs(self, run_id: str) -> LogsResponse:
        """What happened inside one run: its nodes, errors, final output and totals."""
        run = self._run(run_id)
        found, final_output = queries.run_log_nodes(self.store, self.tenant, run)
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

    # --- replay and resume -----------------------------------------------------------------------

    def events(self, run_id: str, mode: str = replay.Mode.FULL) -> Replay:
        """The ordered events of a run (``full``), or its messages only (``transcript``)."""
        mode = replay.Mode(mode)
        run = self._run(run_id)
        return _replay(queries.run_events(self.store, self.tenant, run_id, run), mode)

    def conversation(self, conversation_id: str, mode: str = replay.Mode.FULL) -> Replay:
        """The ordered events of every run of a conversation."""
        mode = replay.Mode(mode)
        events = queries.conversation_events(self.store, self.tenant, conversation_id)
        if not events:
            raise NotFound(f"conversation {conversation_id} not found")
        return _replay(events, mode)

    def resume(self, run_id: str, until_node: str | None = None, until_checkpoint: str | None = None) -> Resume:
        """The messages to resume a run from: up to a node or a checkpoint, or the whole run."""
        run = self._run(run_id)
        events = queries.run_events(self.store, self.tenant, run_id, run)
        try:
            kept, checkpoint = replay.resume_point(events, until_node, until_checkpoint)
        except KeyError as exc:
            raise NotFound(str(exc.args[0])) from None
        return Resume(
            run_id=run_id,
            messages=replay.openai_messages(kept),
            checkpoint=Checkpoint(id=checkpoint.name, state=checkpoint.content, timestamp=checkpoint.timestamp)
            if checkpoint
            else None,
        )

    # --- statistics ------------------------------------------------------------------------------

    def stats(
        self, group_by: str = "agent", since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Run statistics per agent, user or tenant, over runs started in the window."""
        return queries.stats(self.store, self.tenant, group_by=group_by, since=since, until=until)

    def usage(
        self, by: str = "model", since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """LLM usage per model, provider, agent, user or run; most expensive first."""
        return queries.usage(self.store, self.tenant, by=by, since=since, until=until)

    def node_performance(
        self, limit: int = 20, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The slowest (p95) nodes by name and type, with how often they failed."""
        if not 1 <= limit <= MAX_NODE_PERFORMANCE_ROWS:
            raise ValueError(f"limit must be 1 to {MAX_NODE_PERFORMANCE_ROWS}")
        return queries.node_performance(self.store, self.tenant, since=since, until=until, limit=limit)

    # --- deletion and retention ------------------------------------------------------------------

    def delete_run(self, run_id: str) -> Deleted:
        """Forget a run and its sub-agent runs: spans, events, logs and run rows."""
        self._run(run_id)
        return _deleted(retention.delete_run(self.store, self.tenant, run_id))

    def delete_user(self, user_id: str) -> Deleted:
        """Forget every run the user started (with sub-agent runs) and any span naming the user."""
        return _deleted(retention.delete_user(self.store, self.tenant, user_id))

    def retention(self) -> RetentionSettings:
        """The tenant's retention (None: the server's default)."""
        current = retention.get_retention(self.store, self.tenant)
        return RetentionSettings(
            retention_days=current.retention_days, payload_retention_days=current.payload_retention_days
        )

    def set_retention(self, days: int, payload_days: int | None = None) -> RetentionSettings:
        """Keep the tenant's rows stored from now on ``days`` days, their payloads ``payload_days``
        (default: the same); rows already stored keep the retention they had."""
        saved = retention.set_retention(self.store, self.tenant, days, payload_days)
        return RetentionSettings(
            retention_days=saved.retention_days, payload_retention_days=saved.payload_retention_days
        )

    def cleanup(self) -> Deleted:
        """Drop what has outlived its retention now rather than at the next merges. Parts hold
        rows of several tenants, so this applies (and counts) every tenant's retention."""
        return _deleted(retention.cleanup(self.store))

    # ---------------------------------------------------------------------------------------------

    def _run(self, run_id: str) -> Run:
        """The run's time and totals (what bounds the reads of its nodes and events)."""
        run = queries.run_summary(self.store, self.tenant, run_id, queries.RUN_TOTALS)
        if run is None:
            raise NotFound(f"run {run_id} not found")
        return run


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


def _history_item(run: Run) -> HistoryItem:
    return HistoryItem(
        run_id=run.run_id,
        status=_STATUS[run.status],
        started_at=run.started_at.isoformat(),
        duration=duration_text(run.duration_ns),
        input=run.input_preview,
        output=run.output_preview,
        node_count=run.node_count,
        tokens_used=run.usage.total_tokens,
        cost_cents=_cents(run.cost_usd),
        agent=run.agent_name,
    )


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


def _deleted(removed: retention.Removed) -> Deleted:
    return Deleted(removed=removed.rows, total=removed.total)

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

import difflib
import math
from datetime import datetime, timedelta
from typing import Any

from tracehouse import replay
from tracehouse.model import DEFAULT_TENANT, Event, Node, NodeType, Run, Status
from tracehouse.responses import (
    AgentOverview,
    AgentPeriod,
    Checkpoint,
    CompareRow,
    CompareRun,
    CompareStep,
    Comparison,
    Conversation,
    ConversationRun,
    Deleted,
    HistoryItem,
    LogError,
    LogNode,
    LogsResponse,
    LogSummary,
    ModelUsage,
    NodePerformance,
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
MAX_CONVERSATION_RUNS = 1000  # runs of one conversation shown
AGENT_NODES_SHOWN = 10  # slowest and most failing nodes of an agent
AGENT_RUNS_SHOWN = 20  # an agent's latest runs

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
        self, by: str = "model", since: datetime | None = None, until: datetime | None = None, agent: str | None = None
    ) -> list[dict[str, Any]]:
        """LLM usage per model, provider, agent, user or run (of one agent's runs, or all); most
        expensive first."""
        return queries.usage(self.store, self.tenant, by=by, since=since, until=until, agent=agent)

    def node_performance(
        self, limit: int = 20, since: datetime | None = None, until: datetime | None = None, agent: str | None = None
    ) -> list[dict[str, Any]]:
        """The slowest (p95) nodes by name and type (of one agent's runs, or all), with how often
        they failed."""
        if not 1 <= limit <= MAX_NODE_PERFORMANCE_ROWS:
            raise ValueError(f"limit must be 1 to {MAX_NODE_PERFORMANCE_ROWS}")
        return queries.node_performance(self.store, self.tenant, since=since, until=until, limit=limit, agent=agent)

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

    # --- conversation, agent and compare pages ---

    def conversation_runs(self, conversation_id: str, mode: str = replay.Mode.FULL) -> Conversation:
        """Every run of a conversation, oldest first, each with its replayed events."""
        mode = replay.Mode(mode)
        runs = queries.conversation_runs(self.store, self.tenant, conversation_id, MAX_CONVERSATION_RUNS)
        if not runs:
            raise NotFound(f"conversation {conversation_id} not found")
        events = _replay(queries.conversation_events(self.store, self.tenant, conversation_id), mode).events
        by_run: dict[str, list[ReplayEvent]] = {run.run_id: [] for run in runs}
        for event in events:
            by_run.setdefault(event.run_id, []).append(event)
        return Conversation(
            conversation_id=conversation_id,
            mode=mode.value,
            runs=[ConversationRun(run=_history_item(run), events=by_run[run.run_id]) for run in runs],
        )

    def agent(self, name: str, since: datetime | None = None, until: datetime | None = None) -> AgentOverview:
        """One agent: its runs and outcomes, its timeline (per hour, or per day when its runs
        span more than two days), its slowest and most failing nodes, its LLM usage by model."""
        found = [row for row in self.stats("agent", since, until) if row["key"] == name]
        if not name or not found:
            raise NotFound(f"agent {name} not found")
        row = found[0]
        hourly = queries.agent_timeline(self.store, self.tenant, name, bucket="hour", since=since, until=until)
        bucket = "hour"
        if hourly and hourly[-1]["start"] - hourly[0]["start"] > timedelta(days=2):
            bucket = "day"
        timeline = (
            hourly
            if bucket == "hour"
            else queries.agent_timeline(self.store, self.tenant, name, bucket="day", since=since, until=until)
        )
        nodes = [
            NodePerformance(**_finite(n))
            for n in self.node_performance(MAX_NODE_PERFORMANCE_ROWS, since, until, agent=name)
        ]
        failing = sorted((n for n in nodes if n.failures), key=lambda n: (-n.failures, -n.failure_rate, n.name))
        return AgentOverview(
            agent=name,
            runs=row["runs"],
            completed=row["completed"],
            failed=row["failed"],
            incomplete=row["incomplete"],
            running=row["running"],
            success_rate=_number(row["success_rate"]),
            p50_seconds=_number(row["p50_seconds"]),
            p95_seconds=_number(row["p95_seconds"]),
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cost_usd=_number(row["cost_usd"]),
            bucket=bucket,
            timeline=[AgentPeriod(**_finite(p)) for p in timeline],
            slowest_nodes=nodes[:AGENT_NODES_SHOWN],
            failing_nodes=failing[:AGENT_NODES_SHOWN],
            models=[
                ModelUsage(model=u.pop("key"), **{k: v for k, v in _finite(u).items() if k in ModelUsage.model_fields})
                for u in self.usage("model", since, until, agent=name)
            ],
            recent_runs=self.history(agent=name, limit=AGENT_RUNS_SHOWN),
        )

    def compare(self, a: str, b: str) -> Comparison:
        """Two runs side by side: their steps in order, aligned by (type, name), with what
        differs in each pair (messages, tool arguments and results, model, tokens, cost)."""
        runs = []
        for run_id in (a, b):
            run = queries.run_summary(self.store, self.tenant, run_id)
            if run is None:
                raise NotFound(f"run {run_id} not found")
            runs.append(run)
        steps = [[_compare_step(n) for n in queries.run_log_nodes(self.store, self.tenant, run)[0]] for run in runs]
        rows = _align(steps[0], steps[1])
        return Comparison(
            a=_compare_run(runs[0], len(steps[0])),
            b=_compare_run(runs[1], len(steps[1])),
            rows=rows,
            **{
                change: sum(1 for r in rows if r.change == change) for change in ("same", "changed", "only_a", "only_b")
            },
        )

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


# --- conversation, agent and compare pages ---


def _number(value: float | None) -> float:
    """A quantile over no rows is NaN: shown as 0."""
    return 0.0 if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _number(v) if isinstance(v, float) else v for k, v in row.items()}


def _compare_step(node: Node) -> CompareStep:
    return CompareStep(
        span_id=node.span_id,
        type=node.type.value,
        name=node.name,
        status=_STATUS[node.status],
        model=node.model,
        input=node.input,
        output=node.output,
        input_tokens=node.usage.input_tokens,
        output_tokens=node.usage.output_tokens,
        cost_usd=node.cost_usd,
        duration_ns=node.duration_ns,
        duration=duration_text(node.duration_ns),
        error_message=node.status_message,
    )


def _compare_run(run: Run, steps: int) -> CompareRun:
    return CompareRun(
        run_id=run.run_id,
        agent=run.agent_name,
        status=_STATUS[run.status],
        started_at=run.started_at,
        duration_ns=run.duration_ns,
        duration=duration_text(run.duration_ns),
        input=run.input_preview,
        output=run.output_preview,
        input_tokens=run.usage.input_tokens,
        output_tokens=run.usage.output_tokens,
        cost_usd=run.cost_usd,
        steps=steps,
    )


def _differences(a: CompareStep, b: CompareStep) -> list[str]:
    """What differs between two steps of the same type and name (their durations always do)."""
    checks = (
        ("input", a.input != b.input),
        ("output", a.output != b.output),
        ("model", a.model != b.model),
        ("status", a.status != b.status),
        ("tokens", (a.input_tokens, a.output_tokens) != (b.input_tokens, b.output_tokens)),
        ("cost", abs(a.cost_usd - b.cost_usd) > 1e-12),
    )
    return [name for name, differs in checks if differs]


def _step_key(step: CompareStep) -> tuple[str, str]:
    """What two steps must share to be aligned: type and name; of model calls, whose span names
    carry the model ("chat gpt-4o"), the operation only, so a call to another model is a change."""
    if step.type == NodeType.LLM.value:
        return step.type, step.name.split(" ", 1)[0]
    return step.type, step.name


def _align(a: list[CompareStep], b: list[CompareStep]) -> list[CompareRow]:
    """The two step sequences aligned on their longest common subsequence of (type, name)."""
    matcher = difflib.SequenceMatcher(None, [_step_key(s) for s in a], [_step_key(s) for s in b], autojunk=False)
    rows: list[CompareRow] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for x, y in zip(a[i1:i2], b[j1:j2], strict=True):
                differences = _differences(x, y)
                rows.append(CompareRow(change="changed" if differences else "same", a=x, b=y, differences=differences))
            continue
        rows += [CompareRow(change="only_a", a=x, b=None, differences=[]) for x in a[i1:i2]]
        rows += [CompareRow(change="only_b", a=None, b=y, differences=[]) for y in b[j1:j2]]
    return rows

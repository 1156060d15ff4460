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
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tracehouse import replay, semconv
from tracehouse.model import DEFAULT_TENANT, Event, Node, NodeType, Run, Status
from tracehouse.responses import (
    Activity,
    ActivityBucket,
    AgentOverview,
    AgentPeriod,
    ChatMessage,
    ChatPart,
    Checkpoint,
    CompareRow,
    CompareRun,
    CompareStep,
    Comparison,
    Convention,
    Conversation,
    ConversationRun,
    Deleted,
    ExceptionEvent,
    HistoryItem,
    LogError,
    LogNode,
    LogsResponse,
    LogSummary,
    ModelUsage,
    NodeDetail,
    NodePerformance,
    NotFound,
    Replay,
    ReplayEvent,
    Resume,
    RetentionSettings,
    RunRow,
    RunsPage,
    RunTree,
    SpanEventItem,
    TreeNode,
)
from tracehouse.store import Store, queries, retention

__all__ = ["MAX_HISTORY_PAGE", "MAX_NODE_PERFORMANCE_ROWS", "NotFound", "ReadService", "duration_text"]

MAX_CONVERSATION_RUNS = 1000  # runs of one conversation shown
AGENT_NODES_SHOWN = 10  # slowest and most failing nodes of an agent
AGENT_RUNS_SHOWN = 20  # an agent's latest runs

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


def tenants(store: Store) -> list[str]:
    """The tenants that have runs stored, by name: the one read across tenants, for the tenant
    picker of a server without API keys."""
    return queries.tenants(store)


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

    # --- the runs page ---------------------------------------------------------------------------

    def runs(
        self,
        agent: str | None = None,
        status: str | None = None,
        user: str | None = None,
        conversation: str | None = None,
        model: str | None = None,
        search: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        skip: int = 0,
        limit: int = 50,
    ) -> RunsPage:
        """Top-level runs started in [since, until) (default: the last 7 days), newest first, of
        an agent, a status, a user, a conversation, a model (an LLM call of the run or of its
        sub-agents), and whose input or output preview holds ``search`` (in any case)."""
        if skip < 0 or not 1 <= limit <= MAX_HISTORY_PAGE:
            raise ValueError(f"skip must be at least 0 and limit 1 to {MAX_HISTORY_PAGE}")
        filters = _runs_filters(agent, status, user, conversation, model, search)
        since, until = _runs_window(since, until)
        found = queries.search_runs(
            self.store, self.tenant, since=since, until=until, limit=limit + 1, offset=skip, **filters
        )
        return RunsPage(
            runs=[_run_row(run) for run in found[:limit]],
            since=since,
            until=until,
            skip=skip,
            limit=limit,
            more=len(found) > limit,
        )

    def activity(
        self,
        agent: str | None = None,
        status: str | None = None,
        user: str | None = None,
        conversation: str | None = None,
        model: str | None = None,
        search: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Activity:
        """Runs, failed runs and cost per time bucket over [since, until) (default: the last 7
        days), of the runs :meth:`runs` selects with the same filters; at most
        :data:`MAX_ACTIVITY_BUCKETS` buckets of a round size."""
        filters = _runs_filters(agent, status, user, conversation, model, search)
        since, until = _runs_window(since, until)
        step = _bucket_seconds(until - since)
        found = {
            int(start.timestamp()): (runs, failed, cost)
            for start, runs, failed, cost in queries.run_activity(
                self.store, self.tenant, since=since, until=until, bucket_seconds=step, **filters
            )
        }
        first = int(since.timestamp()) // step * step
        buckets = []
        for start in range(first, int(until.timestamp()), step):
            runs, failed, cost = found.get(start, (0, 0, 0.0))
            buckets.append(
                ActivityBucket(start=datetime.fromtimestamp(start, UTC), runs=runs, failed=failed, cost_usd=cost)
            )
        return Activity(since=since, until=until, bucket_seconds=step, buckets=buckets)

    # --- the run page ----------------------------------------------------------------------------

    def run_tree(self, run_id: str, offset: int = 0, limit: int | None = None) -> RunTree:
        """A run and its nodes nested as they ran, without payloads; a sub-agent run is one node
        (its root span), whose own nodes are in its own tree.

        With ``offset`` or ``limit``, ``nodes`` holds only the ``limit`` nodes from ``offset`` in
        tree order (``node_count`` says how many there are in all): the tree is ordered from the
        nodes' ids, and only that page is made into nodes."""
        if offset < 0 or (limit is not None and limit < 1):
            raise ValueError("offset must be at least 0 and limit at least 1")
        run = queries.run_summary(self.store, self.tenant, run_id)
        if run is None:
            raise NotFound(f"run {run_id} not found")
        rows = queries.run_tree_rows(self.store, self.tenant, run)
        by_id: dict[str, tuple] = {}
        for span_id, _, _, row in rows:
            by_id.setdefault(span_id, row)
        order = _tree_order([(span_id, parent) for span_id, parent, _, _ in rows])
        page = order[offset:] if limit is None else order[offset : offset + limit]
        nodes = [_tree_node(queries.tree_node(by_id[span_id]), depth, run) for span_id, depth in page]
        extent = max([run.duration_ns, *(end for _, _, end, _ in rows)])
        return _tree_summary(run, nodes, node_count=len(order), offset=offset, extent_ns=extent)

    def node(self, run_id: str, span_id: str) -> NodeDetail:
        """One node of a run's tree with its payloads, messages and raw attributes."""
        run = self._run(run_id)
        found = queries.run_node(self.store, self.tenant, run, span_id)
        if found is None:
            raise NotFound(f"node {span_id} not found in run {run_id}")
        return _node_detail(found, run_id)

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
            NodePerformance(**n) for n in self.node_performance(MAX_NODE_PERFORMANCE_ROWS, since, until, agent=name)
        ]
        failing = sorted((n for n in nodes if n.failures), key=lambda n: (-n.failures, -n.failure_rate, n.name))
        return AgentOverview(
            agent=name,
            runs=row["runs"],
            completed=row["completed"],
            failed=row["failed"],
            incomplete=row["incomplete"],
            running=row["running"],
            success_rate=row["success_rate"],
            p50_seconds=row["p50_seconds"],
            p95_seconds=row["p95_seconds"],
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            cost_usd=row["cost_usd"],
            bucket=bucket,
            timeline=[AgentPeriod(**p) for p in timeline],
            slowest_nodes=nodes[:AGENT_NODES_SHOWN],
            failing_nodes=failing[:AGENT_NODES_SHOWN],
            models=[
                ModelUsage(model=u.pop("key"), **{k: v for k, v in u.items() if k in ModelUsage.model_fields})
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


# --- the runs page -------------------------------------------------------------------------------

DEFAULT_RUNS_WINDOW = timedelta(days=7)
MAX_RUNS_WINDOW = timedelta(days=3660)
MAX_ACTIVITY_BUCKETS = 60
_BUCKET_STEPS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 30 * 86400)
_FILTER_STATUSES = {s.value for s in Status} - {Status.PENDING.value}
_MAX_FILTER = 1000  # characters of a filter value or a search


def _runs_filters(
    agent: str | None, status: str | None, user: str | None, conversation: str | None, model: str | None,
    search: str | None,
) -> dict[str, str | None]:  # fmt: skip
    if status == "success":  # the history's word for completed
        status = Status.COMPLETED.value
    if status and status not in _FILTER_STATUSES:
        raise ValueError(f"status must be one of {', '.join(sorted(_FILTER_STATUSES))}")
    values = {"agent": agent, "status": status, "user": user, "conversation": conversation, "model": model}
    values["search"] = search.strip() if search else None
    if any(len(v) > _MAX_FILTER for v in values.values() if v):
        raise ValueError(f"a filter or a search is at most {_MAX_FILTER} characters")
    return {k: v or None for k, v in values.items()}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _runs_window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    until = _aware(until) if until else datetime.now(UTC)
    since = _aware(since) if since else until - DEFAULT_RUNS_WINDOW
    if since >= until:
        raise ValueError("since must be before until")
    if until - since > MAX_RUNS_WINDOW:
        raise ValueError(f"a time range is at most {MAX_RUNS_WINDOW.days} days")
    return since, until


def _bucket_seconds(span: timedelta) -> int:
    """The smallest round bucket that cuts the span into at most MAX_ACTIVITY_BUCKETS."""
    seconds = span.total_seconds()
    for step in _BUCKET_STEPS:
        if seconds / step <= MAX_ACTIVITY_BUCKETS:
            return step
    return int(-(-seconds // MAX_ACTIVITY_BUCKETS) // 86400 + 1) * 86400


def _run_row(run: Run) -> RunRow:
    return RunRow(
        run_id=run.run_id,
        agent=run.agent_name,
        status=run.status.value,
        started_at=run.started_at,
        duration_ns=run.duration_ns,
        duration=duration_text(run.duration_ns),
        node_count=run.node_count,
        tokens=run.usage.total_tokens,
        cost_usd=run.cost_usd,
        input=run.input_preview,
        output=run.output_preview,
        user_id=run.user_id,
        conversation_id=run.conversation_id,
    )


# --- the run page --------------------------------------------------------------------------------


def _tree_node(node: Node, depth: int, run: Run) -> TreeNode:
    return TreeNode(
        span_id=node.span_id,
        parent_span_id=node.parent_span_id,
        depth=depth,
        name=node.name,
        type=node.type.value,
        status=_STATUS[node.status],
        started_at=node.started_at,
        offset_ns=max(0, int((node.started_at - run.started_at).total_seconds() * 1e9)),
        duration_ns=node.duration_ns,
        duration=duration_text(node.duration_ns),
        model=node.model,
        input_tokens=node.usage.input_tokens,
        output_tokens=node.usage.output_tokens,
        total_tokens=node.usage.total_tokens,
        cost_usd=node.cost_usd,
        error_type=node.error_type,
        error_message=node.status_message,
        sub_run_id=node.run_id if node.run_root and node.run_id != run.run_id else "",
        agent=node.agent_name,
    )


def _tree_order(nodes: list[tuple[str, str]]) -> list[tuple[str, int]]:
    """``(span id, depth)`` of each node, depth first, children in start order, from the nodes'
    ``(span id, parent span id)`` in start order; a node whose parent is not among them is at
    the top."""
    ids = {span_id for span_id, _ in nodes}
    children: dict[str, list[str]] = {}
    tops: list[str] = []
    for span_id, parent in nodes:  # in start order
        if parent and parent in ids and parent != span_id:
            children.setdefault(parent, []).append(span_id)
        else:
            tops.append(span_id)
    ordered: list[tuple[str, int]] = []
    seen: set[str] = set()
    stack = [(span_id, 0) for span_id in reversed(tops)]
    while stack:  # depth first, children in start order
        span_id, depth = stack.pop()
        if span_id in seen:
            continue
        seen.add(span_id)
        ordered.append((span_id, depth))
        below = children.get(span_id)
        if below:
            stack.extend(zip(reversed(below), [depth + 1] * len(below), strict=True))
    return ordered


def _tree_summary(run: Run, nodes: list[TreeNode], **window: int) -> RunTree:
    return RunTree(
        run_id=run.run_id,
        agent=run.agent_name,
        status=_STATUS[run.status],
        started_at=run.started_at,
        ended_at=run.ended_at,
        duration_ns=run.duration_ns,
        duration=duration_text(run.duration_ns),
        input_tokens=run.usage.input_tokens,
        output_tokens=run.usage.output_tokens,
        total_tokens=run.usage.total_tokens,
        cost_usd=run.cost_usd,
        parent_run_id=run.parent_run_id,
        conversation_id=run.conversation_id,
        trace_id=run.trace_id,
        input_preview=run.input_preview,
        output_preview=run.output_preview,
        error_message=run.error_message,
        nodes=nodes,
        **window,
    )


def _json_or_none(text: str) -> Any:
    if not text or text[0] not in "[{":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _chat_part(part: Any) -> ChatPart:
    if not isinstance(part, dict):
        return ChatPart(type="text", content=_text(part))
    kind = part.get("type", "")
    if kind in ("text", "reasoning", "thinking"):
        return ChatPart(type="reasoning" if kind != "text" else "text", content=_text(part.get("content", "")))
    if kind == "tool_call":
        return ChatPart(
            type="tool_call", name=_text(part.get("name", "")), id=_text(part.get("id", "")),
            arguments=_text(part.get("arguments", "")),
        )  # fmt: skip
    if kind == "tool_call_response":
        return ChatPart(
            type="tool_call_response", id=_text(part.get("id", "")), content=_text(part.get("response", ""))
        )
    return ChatPart(type="other", content=_text(part))


def _chat_message(message: Any) -> ChatMessage:
    """A message in the GenAI shape (role, parts) or the OpenAI one (role, content, tool_calls)."""
    if not isinstance(message, dict):
        return ChatMessage(role="", parts=[ChatPart(type="text", content=_text(message))])
    parts: list[ChatPart] = []
    if isinstance(message.get("parts"), list):
        parts = [_chat_part(p) for p in message["parts"]]
    else:
        content = message.get("content")
        if isinstance(content, list):
            parts = [_chat_part(p) for p in content]
        elif content not in (None, ""):
            kind = "tool_call_response" if message.get("role") == "tool" else "text"
            parts = [ChatPart(type=kind, content=_text(content), id=_text(message.get("tool_call_id", "")))]
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict):
                function = call.get("function") if isinstance(call.get("function"), dict) else call
                parts.append(
                    ChatPart(
                        type="tool_call", name=_text(function.get("name", "")), id=_text(call.get("id", "")),
                        arguments=_text(function.get("arguments", "")),
                    )
                )  # fmt: skip
    finish = message.get("finish_reason") or ""
    return ChatMessage(role=_text(message.get("role", "")), parts=parts, finish_reason=_text(finish))


def _chat(text: str) -> list[ChatMessage]:
    found = _json_or_none(text)
    if isinstance(found, dict):
        found = found.get("messages", [found]) if "role" in found or "messages" in found else None
    if not isinstance(found, list):
        return []
    return [_chat_message(m) for m in found]


def _system(text: str) -> list[ChatMessage]:
    if not text:
        return []
    found = _json_or_none(text)
    parts = [_chat_part(p) for p in found] if isinstance(found, list) else [ChatPart(type="text", content=text)]
    return [ChatMessage(role="system", parts=parts)]


_GENAI_CURRENT = frozenset(
    {
        semconv.GEN_AI_PROVIDER_NAME,
        semconv.GEN_AI_INPUT_MESSAGES,
        semconv.GEN_AI_OUTPUT_MESSAGES,
        semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
        semconv.GEN_AI_TOOL_CALL_ARGUMENTS,
        semconv.GEN_AI_TOOL_CALL_RESULT,
        semconv.GEN_AI_TOOL_DEFINITIONS,
        semconv.EVENT_GEN_AI_INFERENCE_DETAILS,
    }
)
_GENAI_PRE_137 = frozenset(
    {
        semconv.GEN_AI_SYSTEM,
        semconv.GEN_AI_USAGE_PROMPT_TOKENS,
        semconv.GEN_AI_USAGE_COMPLETION_TOKENS,
        semconv.GEN_AI_PROMPT,
        semconv.GEN_AI_COMPLETION,
        semconv.EVENT_GEN_AI_SYSTEM_MESSAGE,
        semconv.EVENT_GEN_AI_USER_MESSAGE,
        semconv.EVENT_GEN_AI_ASSISTANT_MESSAGE,
        semconv.EVENT_GEN_AI_TOOL_MESSAGE,
        semconv.EVENT_GEN_AI_CHOICE,
    }
)
_OPENINFERENCE = frozenset(
    {
        semconv.OPENINFERENCE_SPAN_KIND,
        semconv.OI_INPUT_VALUE,
        semconv.OI_OUTPUT_VALUE,
        semconv.OI_LLM_MODEL_NAME,
        semconv.OI_LLM_INVOCATION_PARAMETERS,
        semconv.OI_LLM_TOKEN_COUNT_PROMPT,
        semconv.OI_LLM_TOKEN_COUNT_COMPLETION,
        semconv.OI_LLM_TOKEN_COUNT_TOTAL,
        semconv.OI_TOOL_PARAMETERS,
    }
)
_OPENINFERENCE_PREFIXES = (
    semconv.OI_LLM_INPUT_MESSAGES + ".",
    semconv.OI_LLM_OUTPUT_MESSAGES + ".",
    "llm.token_count.",
)
_OPENLLMETRY = frozenset(
    {
        semconv.LLM_REQUEST_TYPE,
        semconv.LLM_USAGE_TOTAL_TOKENS,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS_TRACELOOP,
        semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS_TRACELOOP,
        semconv.GEN_AI_USAGE_REASONING_TOKENS_TRACELOOP,
    }
)
_CONVENTION_LABELS = {
    "otel-genai": "OpenTelemetry GenAI (current names)",
    "otel-genai-pre-1.37": "OpenTelemetry GenAI (names before 1.37)",
    "openinference": "OpenInference",
    "openllmetry": "OpenLLMetry (Traceloop)",
    "langfuse": "Langfuse",
    "tracehouse": "tracehouse",
    "plain": "plain OpenTelemetry (no AI convention)",
}


def conventions(names: list[str]) -> list[Convention]:
    """Which conventions a span came in, from the attribute (and span event) names it carried."""
    found: dict[str, list[str]] = {}

    def add(convention: str, name: str) -> None:
        found.setdefault(convention, []).append(name)

    flattened = (semconv.GEN_AI_PROMPT + ".", semconv.GEN_AI_COMPLETION + ".")
    for name in sorted(set(names)):
        if name.startswith("langfuse."):
            add("langfuse", name)
        elif name.startswith("traceloop.") or name in _OPENLLMETRY:
            add("openllmetry", name)
        elif name.startswith(flattened):  # Traceloop's flattened prompts, in the earlier GenAI names
            add("openllmetry", name)
            add("otel-genai-pre-1.37", name)
        elif name in _GENAI_PRE_137:
            add("otel-genai-pre-1.37", name)
        elif name in _GENAI_CURRENT:
            add("otel-genai", name)
        elif name in _OPENINFERENCE or name.startswith(_OPENINFERENCE_PREFIXES):
            add("openinference", name)
        elif name.startswith("tracehouse."):
            add("tracehouse", name)
    # The names both GenAI releases share (gen_ai.operation.name, gen_ai.request.model, ...) count
    # for the current one unless the span used an earlier name.
    shared = [n for n in sorted(set(names)) if n.startswith("gen_ai.") and not any(n in v for v in found.values())]
    if shared and "otel-genai-pre-1.37" not in found:
        found.setdefault("otel-genai", []).extend(shared)
    elif shared:
        found["otel-genai-pre-1.37"].extend(shared)
    if not found:
        found["plain"] = []
    order = list(_CONVENTION_LABELS)
    return [
        Convention(name=name, label=_CONVENTION_LABELS[name], attributes=sorted(attrs))
        for name, attrs in sorted(found.items(), key=lambda item: order.index(item[0]))
    ]


_TOOL_NAME_KEYS = (semconv.GEN_AI_TOOL_NAME, semconv.OI_TOOL_NAME, semconv.TRACELOOP_ENTITY_NAME)
_TOOL_CALL_ID_KEYS = (semconv.GEN_AI_TOOL_CALL_ID, semconv.OI_TOOL_CALL_ID)
_PARAMETER_PREFIX = "gen_ai.request."


def _node_detail(node: Node, run_id: str) -> NodeDetail:
    attributes = {**node.attributes, **node.payload_attributes}
    exception = next((e for e in node.events if e.name == semconv.EXCEPTION_EVENT), None)
    parameters = {
        k.removeprefix(_PARAMETER_PREFIX): v
        for k, v in sorted(attributes.items())
        if k.startswith(_PARAMETER_PREFIX) and k != semconv.GEN_AI_REQUEST_MODEL
    }
    for key in (semconv.OI_LLM_INVOCATION_PARAMETERS, semconv.LANGFUSE_OBSERVATION_MODEL_PARAMETERS):
        if key in attributes:
            parameters[key] = attributes[key]
    llm = node.type.value == "llm"
    is_tool = node.type.value == "tool"
    return NodeDetail(
        run_id=node.run_id or run_id,
        trace_id=node.trace_id,
        span_id=node.span_id,
        parent_span_id=node.parent_span_id,
        name=node.name,
        type=node.type.value,
        status=_STATUS[node.status],
        started_at=node.started_at,
        duration_ns=node.duration_ns,
        duration=duration_text(node.duration_ns),
        operation=node.operation,
        model=node.model,
        provider=node.provider,
        parameters=parameters,
        input_tokens=node.usage.input_tokens,
        output_tokens=node.usage.output_tokens,
        cache_read_tokens=node.usage.cache_read_tokens,
        cache_creation_tokens=node.usage.cache_creation_tokens,
        reasoning_tokens=node.usage.reasoning_tokens,
        cost_usd=node.cost_usd,
        input=node.input,
        output=node.output,
        input_messages=(_system(attributes.get(semconv.GEN_AI_SYSTEM_INSTRUCTIONS, "")) + _chat(node.input))
        if llm
        else [],
        output_messages=_chat(node.output) if llm else [],
        tool_name=next((attributes[k] for k in _TOOL_NAME_KEYS if attributes.get(k)), "") if is_tool else "",
        tool_call_id=next((attributes[k] for k in _TOOL_CALL_ID_KEYS if attributes.get(k)), "") if is_tool else "",
        error_type=node.error_type,
        error_message=node.status_message,
        exception=ExceptionEvent(
            type=exception.attributes.get(semconv.EXCEPTION_TYPE, ""),
            message=exception.attributes.get(semconv.EXCEPTION_MESSAGE, ""),
            stacktrace=exception.attributes.get(semconv.EXCEPTION_STACKTRACE, ""),
            timestamp=exception.timestamp,
        )
        if exception
        else None,
        sub_run_id=node.run_id if node.run_root and node.run_id != run_id else "",
        agent=node.agent_name,
        conventions=conventions([*attributes, *(e.name for e in node.events)]),
        attributes=dict(sorted(attributes.items())),
        resource_attributes=dict(sorted(node.resource_attributes.items())),
        events=[SpanEventItem(timestamp=e.timestamp, name=e.name, attributes=e.attributes) for e in node.events],
        scope_name=node.scope_name,
        span_kind=node.span_kind,
        otel_status_code=node.otel_status_code,
    )


# --- conversation, agent and compare pages ---


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

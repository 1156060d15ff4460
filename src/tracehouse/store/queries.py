"""Reads over the store, tenant-scoped and parameterized (values are bound, never formatted in).

List views read only the small summary columns of the ``runs`` table: never a payload column
(see :data:`tracehouse.store.schema.PAYLOAD_COLUMNS`; ``tests/test_queries.py`` proves it from
the query plan).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from tracehouse.model import Event, Node, NodeType, Run, SpanEvent, SpanLink, Status, Usage
from tracehouse.store import rows, schema

# Columns of the runs table read into Run fields of the same value (Status and the token counts
# are converted in _run).
_RUN_FIELDS = {
    "Tenant": "tenant",
    "RunId": "run_id",
    "ParentRunId": "parent_run_id",
    "TraceId": "trace_id",
    "RootSpanId": "root_span_id",
    "AgentName": "agent_name",
    "ServiceName": "service_name",
    "ConversationId": "conversation_id",
    "UserId": "user_id",
    "StartedAt": "started_at",
    "EndedAt": "ended_at",
    "DurationNs": "duration_ns",
    "NodeCount": "node_count",
    "FailedNodes": "failed_nodes",
    "LlmCalls": "llm_calls",
    "ToolCalls": "tool_calls",
    "CostUsd": "cost_usd",
    "InputPreview": "input_preview",
    "OutputPreview": "output_preview",
    "ErrorMessage": "error_message",
    "Metadata": "metadata",
    "TtlDays": "ttl_days",
}
_USAGE_COLUMNS = ("InputTokens", "OutputTokens", "CacheReadTokens", "CacheCreationTokens", "ReasoningTokens")
_RUN_LIST_COLUMNS = (*_RUN_FIELDS, "Status", *_USAGE_COLUMNS)
# What a run's logs and replay need of its row: its time (which bounds their reads) and totals.
# Fewer columns read are a faster lookup.
RUN_TOTALS = ("Tenant", "RunId", "StartedAt", "EndedAt", "DurationNs", "CostUsd", *_USAGE_COLUMNS)


def list_runs_sql(
    runs_table: str,
    *,
    agent: bool = False,
    status: bool = False,
    since: bool = False,
    until: bool = False,
    top_level: bool = False,
) -> str:
    """The history query; each flag adds the filter on the bound parameter of that name."""
    where = ["Tenant = {tenant:String}"]
    if top_level:
        where.append("ParentRunId = ''")
    if agent:
        where.append("AgentName = {agent:String}")
    if status:
        where.append("Status = {status:String}")
    if since:
        where.append("StartedAt >= {since:DateTime64(9)}")
    if until:
        where.append("StartedAt < {until:DateTime64(9)}")
    return (
        f"SELECT {', '.join(_RUN_LIST_COLUMNS)} FROM {runs_table} FINAL "
        f"WHERE {' AND '.join(where)} "
        "ORDER BY StartedAt DESC, RunId DESC LIMIT {limit:UInt32} OFFSET {offset:UInt64}"
    )


def list_runs(
    store: Any,
    tenant: str,
    *,
    agent: str | None = None,
    status: Status | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    top_level: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> list[Run]:
    """Runs of a tenant, newest first; ``top_level`` leaves out sub-agent runs.

    The page is first looked for among recent runs only (the last day, then the last week):
    when that window holds a full page, it is the page, since every run outside the window is
    older than every run in it. Only a short page widens the window, so the newest pages read
    a few partitions instead of all of them.
    """
    params: dict[str, Any] = {"tenant": tenant, "limit": limit, "offset": offset}
    for name, value in (("agent", agent), ("status", status), ("until", until)):
        if value is not None:
            params[name] = value.value if isinstance(value, Status) else value
    sql = list_runs_sql(
        store.table(schema.RUNS),
        agent=agent is not None,
        status=status is not None,
        since=True,
        until=until is not None,
        top_level=top_level,
    )
    floor = since or datetime(1970, 1, 1, tzinfo=UTC)
    newest = until or datetime.now(UTC)
    for window in _HISTORY_WINDOWS:
        if newest - window <= floor:
            break
        rows = store.query(sql, {**params, "since": newest - window})
        if len(rows) >= limit:
            return [_run(row) for row in rows]
    return [_run(row) for row in store.query(sql, {**params, "since": floor})]


# Windows the history looks in before reading every partition (see list_runs).
_HISTORY_WINDOWS = (timedelta(days=1), timedelta(days=7))


def _usage(r: dict[str, Any]) -> Usage:
    return Usage(
        input_tokens=r["InputTokens"],
        output_tokens=r["OutputTokens"],
        cache_read_tokens=r["CacheReadTokens"],
        cache_creation_tokens=r["CacheCreationTokens"],
        reasoning_tokens=r["ReasoningTokens"],
    )


def _run(row: tuple, columns: tuple[str, ...] = _RUN_LIST_COLUMNS) -> Run:
    """A Run from the columns read; fields whose columns were not read keep their defaults."""
    r = dict(zip(columns, row, strict=True))
    fields = _mapped(r, _RUN_FIELDS)
    if "Status" in r:
        fields["status"] = Status(r["Status"])
    if "InputTokens" in r:
        fields["usage"] = _usage(r)
    return Run(**fields)


def _mapped(r: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    """Model fields from the columns read, by a column -> field map (columns not read are left out)."""
    return {field: r[column] for column, field in fields.items() if column in r}


_NODE_COLUMNS = (
    "Tenant",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ScopeName",
    "ScopeVersion",
    "ResourceAttributes",
    "SpanAttributes",
    "PayloadAttributes",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
    "Timestamp",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "RunId",
    "ParentRunId",
    "RunRoot",
    "NodeType",
    "Status",
    "OperationName",
    "AgentName",
    "ConversationId",
    "UserId",
    "Model",
    "Provider",
    "InputTokens",
    "OutputTokens",
    "CacheReadTokens",
    "CacheCreationTokens",
    "ReasoningTokens",
    "CostUsd",
    "Input",
    "Output",
    "ErrorType",
    "TtlDays",
    "PayloadTtlDays",
)


# Spans and events never change once written: a duplicate (a re-delivered span) is the same
# row again. Reads of one run or trace therefore keep one row per identity with LIMIT 1 BY
# instead of FINAL, which would merge every part of every partition the read touches.
_ONE_PER_SPAN = "LIMIT 1 BY TraceId, SpanId"


def _select_nodes(
    store: Any, where: str, params: dict[str, Any], columns: tuple[str, ...] = _NODE_COLUMNS
) -> list[Node]:
    sql = (
        f"SELECT {', '.join(f'`{c}`' for c in columns)} FROM {store.table(schema.SPANS)} "
        f"WHERE Tenant = {{tenant:String}} AND {where} ORDER BY Timestamp, SpanId {_ONE_PER_SPAN}"
    )
    return [_node(dict(zip(columns, row, strict=True))) for row in store.query(sql, params)]


# What a run's log shows of each node: no raw attribute maps, span events or links, which
# are most of a span's bytes (the full span is in run_nodes and the trace view).
_LOG_NODE_COLUMNS = (
    "TraceId", "SpanId", "ParentSpanId", "SpanName", "Timestamp", "Duration", "StatusMessage", "RunId", "ParentRunId",
    "RunRoot", "NodeType", "Status", "AgentName", "Model", "Provider", "InputTokens", "OutputTokens", "CacheReadTokens",
    "CacheCreationTokens", "ReasoningTokens", "CostUsd", "Input", "Output", "ErrorType",
)  # fmt: skip


def run_nodes(store: Any, tenant: str, run_id: str) -> list[Node]:
    """Every span of one run in start order (its sub-runs' spans not included), with payloads."""
    run = run_summary(store, tenant, run_id)  # its row bounds the read to the run's time
    if run is None:
        return []
    return _select_nodes(
        store,
        "RunId = {run_id:String} AND Timestamp BETWEEN {start:DateTime64(9)} AND {end:DateTime64(9)}",
        {"tenant": tenant, "run_id": run_id, "start": run.started_at, "end": run.ended_at or run.started_at},
    )


def trace_nodes(store: Any, tenant: str, trace_id: str) -> list[Node]:
    """Every span of one trace in start order: a run with its sub-agent runs."""
    # The trace id -> time range lookup (the one Grafana uses) bounds the read to the trace's time.
    window = store.query(
        f"SELECT min(Start), max(End) FROM {store.table(schema.TRACE_ID_TS)} WHERE TraceId = {{trace_id:String}}",
        {"trace_id": trace_id},
    )
    if not window or window[0][0] is None or window[0][0].year < 1971:
        return []
    return _select_nodes(
        store,
        "TraceId = {trace_id:String} AND Timestamp BETWEEN {start:DateTime64(9)} AND "
        "addSeconds({end:DateTime64(9)}, 1)",
        {"tenant": tenant, "trace_id": trace_id, "start": window[0][0], "end": window[0][1]},
    )


# Columns read into Node fields of the same value (the rest are assembled in _node).
_NODE_FIELDS = {
    "Tenant": "tenant",
    "TraceId": "trace_id",
    "SpanId": "span_id",
    "ParentSpanId": "parent_span_id",
    "TraceState": "trace_state",
    "SpanName": "name",
    "SpanKind": "span_kind",
    "ServiceName": "service_name",
    "ScopeName": "scope_name",
    "ScopeVersion": "scope_version",
    "ResourceAttributes": "resource_attributes",
    "SpanAttributes": "attributes",
    "PayloadAttributes": "payload_attributes",
    "Timestamp": "started_at",
    "Duration": "duration_ns",
    "StatusCode": "otel_status_code",
    "StatusMessage": "status_message",
    "RunId": "run_id",
    "ParentRunId": "parent_run_id",
    "RunRoot": "run_root",
    "OperationName": "operation",
    "AgentName": "agent_name",
    "ConversationId": "conversation_id",
    "UserId": "user_id",
    "Model": "model",
    "Provider": "provider",
    "CostUsd": "cost_usd",
    "Input": "input",
    "Output": "output",
    "ErrorType": "error_type",
    "TtlDays": "ttl_days",
    "PayloadTtlDays": "payload_ttl_days",
}


def _node(r: dict[str, Any]) -> Node:
    """A Node from the columns read; fields whose columns were not read keep their defaults."""
    fields = _mapped(r, _NODE_FIELDS)
    if "NodeType" in r:
        fields["type"] = NodeType.parse(r["NodeType"])
    if "Status" in r:
        fields["status"] = Status(r["Status"])
    if "InputTokens" in r:
        fields["usage"] = _usage(r)
    if "Events.Name" in r:
        fields["events"] = [
            SpanEvent(timestamp=ts, name=name, attributes=attrs)
            for ts, name, attrs in zip(r["Events.Timestamp"], r["Events.Name"], r["Events.Attributes"], strict=True)
        ]
    if "Links.TraceId" in r:
        fields["links"] = [
            SpanLink(trace_id=t, span_id=s, trace_state=st, attributes=a)
            for t, s, st, a in zip(
                r["Links.TraceId"], r["Links.SpanId"], r["Links.TraceState"], r["Links.Attributes"], strict=True
            )
        ]
    return Node(**fields)


def run_summary(store: Any, tenant: str, run_id: str, columns: tuple[str, ...] = _RUN_LIST_COLUMNS) -> Run | None:
    """One run's row (all of it, or the columns given, e.g. :data:`RUN_TOTALS`), or None (also
    for another tenant's run).

    What FINAL would give, for one run only: the newest version under each key the run was
    listed under (its key moves when its start moves), without the tombstoned ones. Read from
    the copy of the runs sorted by id, so finding it reads a few granules of one partition.
    """
    sql = (
        f"SELECT {', '.join(columns)}, Version, IsDeleted FROM {store.table(schema.RUNS_BY_ID)} "
        "WHERE Tenant = {tenant:String} AND RunId = {run_id:String} "
        # Expired rows leave this table at merges; the runs table has dropped them already.
        f"AND {schema.RUN_EXPIRES} > now() "
        "ORDER BY StartedAt, Version DESC LIMIT 1 BY StartedAt"
    )
    live = [row for row in store.query(sql, {"tenant": tenant, "run_id": run_id}) if not row[-1]]
    return _run(max(live, key=lambda row: row[-2])[:-2], columns) if live else None


def run_log_nodes(store: Any, tenant: str, run: Run) -> tuple[list[Node], str]:
    """The nodes of a run in start order: its spans but its own root, and the root spans of its
    sub-agent runs (a sub-agent is one node of its parent run); and the run's final output in
    full (lists only carry its preview), from its root span, read in the same query."""
    nodes = _select_nodes(
        store,
        "Timestamp BETWEEN {start:DateTime64(9)} AND {end:DateTime64(9)} AND "
        "(RunId = {run_id:String} OR (RunRoot AND ParentRunId = {run_id:String}))",
        {"tenant": tenant, "run_id": run.run_id, "start": run.started_at, "end": run.ended_at or run.started_at},
        _LOG_NODE_COLUMNS,
    )
    root = next((n for n in nodes if n.run_root and n.run_id == run.run_id), None)
    return [n for n in nodes if n is not root], root.output if root else ""


def _select_events(store: Any, where: str, params: dict[str, Any]) -> list[Event]:
    sql = (
        f"SELECT {', '.join(rows.EVENT_COLUMNS)} FROM {store.table(schema.EVENTS)} "
        f"WHERE Tenant = {{tenant:String}} AND {where} ORDER BY Timestamp, SpanId, Seq {_ONE_PER_SPAN}, Seq"
    )
    return [Event(**dict(zip(rows.EVENT_FIELDS, row, strict=True))) for row in store.query(sql, params)]


# Events lie inside their run's time (they come from its spans); the margin only guards against
# span events stamped by a skewed clock. The bound lets the read skip other days' partitions.
_EVENT_MARGIN_SECONDS = 3600


def run_events(store: Any, tenant: str, run_id: str, run: Run | None = None) -> list[Event]:
    """The ordered events of one run (its sub-agent runs have their own). With the run's row,
    the read is bounded to the run's time."""
    params: dict[str, Any] = {"tenant": tenant, "run_id": run_id}
    where = "RunId = {run_id:String}"
    if run is not None:
        where += (
            " AND Timestamp BETWEEN subtractSeconds({start:DateTime64(9)}, {margin:UInt32})"
            " AND addSeconds({end:DateTime64(9)}, {margin:UInt32})"
        )
        params |= {"start": run.started_at, "end": run.ended_at or run.started_at, "margin": _EVENT_MARGIN_SECONDS}
    return _select_events(store, where, params)


def conversation_events(store: Any, tenant: str, conversation_id: str) -> list[Event]:
    """The ordered events of every run of a conversation."""
    # Runs name their conversation on their root span; the runs table finds them.
    runs = (
        f"SELECT RunId FROM {store.table(schema.RUNS)} FINAL "
        "WHERE Tenant = {tenant:String} AND ConversationId = {conversation_id:String}"
    )
    return _select_events(store, f"RunId IN ({runs})", {"tenant": tenant, "conversation_id": conversation_id})


_STATS_GROUPS = {"agent": "AgentName", "user": "UserId", "tenant": "Tenant"}
_USAGE_GROUPS = {
    "model": "s.Model",
    "provider": "s.Provider",
    "agent": "r.AgentName",
    "user": "r.UserId",
    "run": "s.RunId",
}
# Only a run's root span names its agent (and often its user), so LLM calls are attributed to
# the agent and user of the run they belong to.
_USAGE_BY_RUN = {"agent", "user"}


def _window(since: datetime | None, until: datetime | None, column: str) -> tuple[str, dict[str, Any]]:
    where, params = [], {}
    if since is not None:
        where.append(f"{column} >= {{since:DateTime64(9)}}")
        params["since"] = since
    if until is not None:
        where.append(f"{column} < {{until:DateTime64(9)}}")
        params["until"] = until
    return "".join(f" AND {w}" for w in where), params


def stats(
    store: Any, tenant: str, *, group_by: str = "agent", since: datetime | None = None, until: datetime | None = None
) -> list[dict[str, Any]]:
    """Run statistics per agent, user or tenant over a time window (by run start)."""
    if group_by not in _STATS_GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(_STATS_GROUPS)}")
    window, params = _window(since, until, "StartedAt")
    # Success is counted among the runs that are over, incomplete ones (most likely crashed)
    # included; durations only of runs whose root span arrived (an incomplete run's is cut short).
    done = f"Status != '{Status.RUNNING.value}'"
    finished = f"Status IN ('{Status.COMPLETED.value}', '{Status.FAILED.value}', '{Status.CANCELLED.value}')"
    sql = f"""
        SELECT {_STATS_GROUPS[group_by]} AS key, count() AS runs,
               countIf(Status = '{Status.COMPLETED.value}') AS completed,
               countIf(Status = '{Status.FAILED.value}') AS failed,
               countIf(Status = '{Status.CANCELLED.value}') AS cancelled,
               countIf(Status = '{Status.RUNNING.value}') AS running,
               countIf(Status = '{Status.INCOMPLETE.value}') AS incomplete,
               if(countIf({done}) = 0, 0, completed / countIf({done})) AS success_rate,
               quantileIf(0.5)(DurationNs, {finished}) / 1e9 AS p50_seconds,
               quantileIf(0.95)(DurationNs, {finished}) / 1e9 AS p95_seconds,
               avg(NodeCount) AS avg_nodes, sum(LlmCalls) AS llm_calls, sum(InputTokens) AS input_tokens,
               sum(OutputTokens) AS output_tokens, sum(CostUsd) AS cost_usd
        FROM {store.table(schema.RUNS)} FINAL
        WHERE Tenant = {{tenant:String}}{window}
        GROUP BY key ORDER BY runs DESC, key
    """
    return _dicts(store, sql, {"tenant": tenant, **params})


def usage(
    store: Any,
    tenant: str,
    *,
    by: str = "model",
    since: datetime | None = None,
    until: datetime | None = None,
    agent: str | None = None,
) -> list[dict[str, Any]]:
    """LLM usage (calls, tokens, cost) grouped by model, provider, agent, user or run; of one
    agent's runs only with ``agent``."""
    if by not in _USAGE_GROUPS:
        raise ValueError(f"by must be one of {', '.join(_USAGE_GROUPS)}")
    window, params = _window(since, until, "s.Timestamp")
    window += _of_agent(store, agent, "s.RunId", params)
    join = ""
    if by in _USAGE_BY_RUN:
        join = f"""
        INNER JOIN (SELECT Tenant, RunId, AgentName, UserId FROM {store.table(schema.RUNS)} FINAL
                    WHERE Tenant = {{tenant:String}}) AS r ON s.Tenant = r.Tenant AND s.RunId = r.RunId"""
    sql = f"""
        SELECT {_USAGE_GROUPS[by]} AS key, count() AS llm_calls, sum(s.InputTokens) AS input_tokens,
               sum(s.OutputTokens) AS output_tokens, sum(s.CacheReadTokens) AS cache_read_tokens,
               sum(s.ReasoningTokens) AS reasoning_tokens, sum(s.CostUsd) AS cost_usd
        FROM {store.table(schema.SPANS)} AS s FINAL{join}
        WHERE s.Tenant = {{tenant:String}} AND s.NodeType = '{NodeType.LLM.value}'{window}
        GROUP BY key ORDER BY cost_usd DESC, key
    """
    return _dicts(store, sql, {"tenant": tenant, **params})


def node_performance(
    store: Any,
    tenant: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 20,
    agent: str | None = None,
) -> list[dict[str, Any]]:
    """Nodes by name and type: how often they ran, how slow (p50/p95) and how often they failed,
    slowest first; of one agent's runs only with ``agent``."""
    window, params = _window(since, until, "Timestamp")
    window += _of_agent(store, agent, "RunId", params)
    sql = f"""
        SELECT SpanName AS name, NodeType AS type, count() AS executions,
               countIf(Status = '{Status.FAILED.value}') AS failures, failures / executions AS failure_rate,
               quantile(0.5)(Duration) / 1e9 AS p50_seconds, quantile(0.95)(Duration) / 1e9 AS p95_seconds
        FROM {store.table(schema.SPANS)} FINAL
        WHERE Tenant = {{tenant:String}} AND NOT RunRoot AND RunId != ''{window}
        GROUP BY name, type ORDER BY p95_seconds DESC, name LIMIT {{limit:UInt32}}
    """
    return _dicts(store, sql, {"tenant": tenant, "limit": limit, **params})


def _finite(value: Any) -> Any:
    """A statistic over no rows (a quantile or an average of nothing) is NaN to the engine: 0 to
    readers, whose JSON has no NaN."""
    return 0.0 if isinstance(value, float) and not math.isfinite(value) else value


def _dicts(store: Any, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    result = store.client.query(sql, parameters=params)
    names = result.column_names
    return [{name: _finite(value) for name, value in zip(names, row, strict=True)} for row in result.result_rows]


def tenants(store: Any, limit: int = 1000) -> list[str]:
    """The tenants that have runs stored, by name: what a server without API keys offers to pick."""
    sql = f"SELECT DISTINCT Tenant FROM {store.table(schema.RUNS)} ORDER BY Tenant LIMIT {{limit:UInt32}}"
    return [row[0] for row in store.query(sql, {"limit": limit})]


# --- the runs page ---------------------------------------------------------------------------


def _runs_filter(
    store: Any,
    tenant: str,
    *,
    since: datetime,
    until: datetime,
    agent: str | None = None,
    status: str | None = None,
    user: str | None = None,
    conversation: str | None = None,
    model: str | None = None,
    search: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """The WHERE clause (and its bound parameters) of the runs page: top-level runs started in
    [since, until), narrowed by each filter given. ``model`` matches runs whose trace (the run
    with its sub-agent runs) holds an LLM call of that model: the runs table has no model, so
    that one reads the spans' Model column, within the same time range. ``search`` looks for
    the text, in any case, in the runs' input and output previews."""
    where = [
        "Tenant = {tenant:String}",
        "ParentRunId = ''",
        "StartedAt >= {since:DateTime64(9)}",
        "StartedAt < {until:DateTime64(9)}",
    ]
    params: dict[str, Any] = {"tenant": tenant, "since": since, "until": until}
    for name, column, value in (
        ("agent", "AgentName", agent),
        ("status", "Status", status),
        ("user", "UserId", user),
        ("conversation", "ConversationId", conversation),
    ):
        if value:
            where.append(f"{column} = {{{name}:String}}")
            params[name] = value
    if model:
        where.append(
            f"TraceId IN (SELECT TraceId FROM {store.table(schema.SPANS)} WHERE Tenant = {{tenant:String}} "
            f"AND NodeType = '{NodeType.LLM.value}' AND Model = {{model:String}} "
            "AND Timestamp >= {since:DateTime64(9)} AND Timestamp < addDays({until:DateTime64(9)}, 1))"
        )
        params["model"] = model
    if search:
        where.append(
            "(positionCaseInsensitiveUTF8(InputPreview, {search:String}) > 0 "
            "OR positionCaseInsensitiveUTF8(OutputPreview, {search:String}) > 0)"
        )
        params["search"] = search
    return " AND ".join(where), params


def search_runs_sql(
    store: Any, tenant: str, *, since: datetime, until: datetime, limit: int = 50, offset: int = 0, **filters: Any
) -> tuple[str, dict[str, Any]]:
    """The query of :func:`search_runs` and its bound parameters."""
    where, params = _runs_filter(store, tenant, since=since, until=until, **filters)
    sql = (
        f"SELECT {', '.join(_RUN_LIST_COLUMNS)} FROM {store.table(schema.RUNS)} FINAL WHERE {where} "
        "ORDER BY StartedAt DESC, RunId DESC LIMIT {limit:UInt32} OFFSET {offset:UInt64}"
    )
    return sql, {**params, "limit": limit, "offset": offset}


def search_runs(store: Any, tenant: str, **arguments: Any) -> list[Run]:
    """Top-level runs of the runs page, newest first, filtered (see :func:`_runs_filter`): the
    small columns of the runs table only."""
    sql, params = search_runs_sql(store, tenant, **arguments)
    return [_run(row) for row in store.query(sql, params)]


def run_activity(
    store: Any, tenant: str, *, since: datetime, until: datetime, bucket_seconds: int, **filters: Any
) -> list[tuple[datetime, int, int, float]]:
    """(bucket start, runs, failed runs, cost) per bucket of ``bucket_seconds`` of run start
    that holds any run, oldest first, over the runs the same filters select."""
    where, params = _runs_filter(store, tenant, since=since, until=until, **filters)
    sql = (
        "SELECT toStartOfInterval(StartedAt, toIntervalSecond({bucket:UInt32}), 'UTC') AS bucket, count(), "
        f"countIf(Status = '{Status.FAILED.value}'), sum(CostUsd) "
        f"FROM {store.table(schema.RUNS)} FINAL WHERE {where} GROUP BY bucket ORDER BY bucket"
    )
    return [tuple(row) for row in store.query(sql, {**params, "bucket": bucket_seconds})]


# --- the run page ------------------------------------------------------------------------------

# What a run's tree shows of each node: no payload column, no raw attribute maps.
_TREE_NODE_COLUMNS = (
    "TraceId", "SpanId", "ParentSpanId", "SpanName", "Timestamp", "Duration", "StatusMessage", "RunId", "ParentRunId",
    "RunRoot", "NodeType", "Status", "AgentName", "Model", "InputTokens", "OutputTokens", "CacheReadTokens",
    "CacheCreationTokens", "ReasoningTokens", "CostUsd", "ErrorType",
)  # fmt: skip
_TREE_SPAN_ID, _TREE_PARENT_ID = _TREE_NODE_COLUMNS.index("SpanId"), _TREE_NODE_COLUMNS.index("ParentSpanId")
# A run still running has no end yet: its spans are read up to this long after its start.
_RUNNING_WINDOW = timedelta(days=2)


def _run_window(run: Run) -> dict[str, Any]:
    end = run.ended_at or run.started_at
    if run.status in (Status.RUNNING, Status.PENDING, Status.INCOMPLETE):
        end = max(end, run.started_at + _RUNNING_WINDOW)
    return {"start": run.started_at, "end": end}


_RUN_AND_SUB_RUN_ROOTS = (
    "Timestamp BETWEEN {start:DateTime64(9)} AND {end:DateTime64(9)} AND "
    "(RunId = {run_id:String} OR (RunRoot AND ParentRunId = {run_id:String}))"
)


def run_tree_rows(store: Any, tenant: str, run: Run) -> list[tuple[str, str, int, tuple]]:
    """The spans of a run (its root included) and the root spans of its sub-agent runs, in
    start order, without payloads: each as ``(span id, parent span id, end in ns from the run's
    start, row)``, the row made a :class:`Node` by :func:`tree_node` only where it is shown (a
    long tree is ordered from the ids alone, and one page of it shown)."""
    params = {"tenant": tenant, "run_id": run.run_id, **_run_window(run), "run_start": run.started_at}
    sql = (
        f"SELECT {', '.join(f'`{c}`' for c in _TREE_NODE_COLUMNS)}, "
        "toInt64(dateDiff('ns', {run_start:DateTime64(9)}, Timestamp)) + toInt64(Duration) "
        f"FROM {store.table(schema.SPANS)} WHERE Tenant = {{tenant:String}} AND {_RUN_AND_SUB_RUN_ROOTS} "
        f"ORDER BY Timestamp, SpanId {_ONE_PER_SPAN}"
    )
    return [(row[_TREE_SPAN_ID], row[_TREE_PARENT_ID], int(row[-1]), row) for row in store.query(sql, params)]


def tree_node(row: tuple) -> Node:
    """The node of a row of :func:`run_tree_rows`."""
    return _node(dict(zip(_TREE_NODE_COLUMNS, row, strict=False)))


def run_node(store: Any, tenant: str, run: Run, span_id: str) -> Node | None:
    """One node of a run's tree, whole: payloads, raw attributes, span events."""
    params = {"tenant": tenant, "run_id": run.run_id, "span_id": span_id, **_run_window(run)}
    found = _select_nodes(store, f"SpanId = {{span_id:String}} AND {_RUN_AND_SUB_RUN_ROOTS}", params)
    return found[0] if found else None


# --- conversation, agent and compare pages ---


def _of_agent(store: Any, agent: str | None, column: str, params: dict[str, Any]) -> str:
    """The filter keeping the spans of one agent's runs (only a run's root span names its agent,
    so the runs table says which runs are the agent's), its value added to ``params``."""
    if agent is None:
        return ""
    params["agent"] = agent
    return (
        f" AND {column} IN (SELECT RunId FROM {store.table(schema.RUNS)} FINAL "
        "WHERE Tenant = {tenant:String} AND AgentName = {agent:String})"
    )


# How the timeline of an agent buckets its runs (a fixed choice, never a value from a request).
_BUCKETS = {"hour": "toStartOfHour(StartedAt)", "day": "toStartOfDay(StartedAt)"}


def agent_timeline(
    store: Any,
    tenant: str,
    agent: str,
    *,
    bucket: str = "day",
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """One agent's runs per hour or day (by start): runs, completed, failed, p50/p95 seconds of
    the finished ones, tokens and cost; oldest first."""
    if bucket not in _BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(_BUCKETS)}")
    window, params = _window(since, until, "StartedAt")
    finished = f"Status IN ('{Status.COMPLETED.value}', '{Status.FAILED.value}', '{Status.CANCELLED.value}')"
    sql = f"""
        SELECT {_BUCKETS[bucket]} AS start, count() AS runs,
               countIf(Status = '{Status.COMPLETED.value}') AS completed,
               countIf(Status = '{Status.FAILED.value}') AS failed,
               quantileIf(0.5)(DurationNs, {finished}) / 1e9 AS p50_seconds,
               quantileIf(0.95)(DurationNs, {finished}) / 1e9 AS p95_seconds,
               sum(InputTokens) + sum(OutputTokens) AS tokens, sum(CostUsd) AS cost_usd
        FROM {store.table(schema.RUNS)} FINAL
        WHERE Tenant = {{tenant:String}} AND AgentName = {{agent:String}}{window}
        GROUP BY start ORDER BY start
    """
    return _dicts(store, sql, {"tenant": tenant, "agent": agent, **params})


def conversation_runs(store: Any, tenant: str, conversation_id: str, limit: int = 1000) -> list[Run]:
    """The runs of a conversation, oldest first (summary columns only)."""
    sql = (
        f"SELECT {', '.join(_RUN_LIST_COLUMNS)} FROM {store.table(schema.RUNS)} FINAL "
        "WHERE Tenant = {tenant:String} AND ConversationId = {conversation_id:String} "
        "ORDER BY StartedAt, RunId LIMIT {limit:UInt32}"
    )
    params = {"tenant": tenant, "conversation_id": conversation_id, "limit": limit}
    return [_run(row) for row in store.query(sql, params)]

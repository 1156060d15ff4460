"""Reads over the store, tenant-scoped and parameterized (values are bound, never formatted in).

List views read only the small summary columns of the ``runs`` table: never a payload column
(see :data:`tracehouse.store.schema.PAYLOAD_COLUMNS`; ``tests/test_queries.py`` proves it from
the query plan).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tracehouse.model import Event, Node, NodeType, Run, SpanEvent, SpanLink, Status, Usage
from tracehouse.store import rows, schema

_RUN_LIST_COLUMNS = (
    "Tenant",
    "RunId",
    "ParentRunId",
    "TraceId",
    "RootSpanId",
    "AgentName",
    "ServiceName",
    "ConversationId",
    "UserId",
    "Status",
    "StartedAt",
    "EndedAt",
    "DurationNs",
    "NodeCount",
    "FailedNodes",
    "LlmCalls",
    "ToolCalls",
    "InputTokens",
    "OutputTokens",
    "CacheReadTokens",
    "CacheCreationTokens",
    "ReasoningTokens",
    "CostUsd",
    "InputPreview",
    "OutputPreview",
    "ErrorMessage",
    "Metadata",
    "TtlDays",
)


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
    """Runs of a tenant, newest first; ``top_level`` leaves out sub-agent runs."""
    params: dict[str, Any] = {"tenant": tenant, "limit": limit, "offset": offset}
    for name, value in (("agent", agent), ("status", status), ("since", since), ("until", until)):
        if value is not None:
            params[name] = value.value if isinstance(value, Status) else value
    sql = list_runs_sql(
        store.table(schema.RUNS),
        agent=agent is not None,
        status=status is not None,
        since=since is not None,
        until=until is not None,
        top_level=top_level,
    )
    return [_run(row) for row in store.query(sql, params)]


def _usage(r: dict[str, Any]) -> Usage:
    return Usage(
        input_tokens=r["InputTokens"],
        output_tokens=r["OutputTokens"],
        cache_read_tokens=r["CacheReadTokens"],
        cache_creation_tokens=r["CacheCreationTokens"],
        reasoning_tokens=r["ReasoningTokens"],
    )


def _run(row: tuple) -> Run:
    r = dict(zip(_RUN_LIST_COLUMNS, row, strict=True))
    return Run(
        tenant=r["Tenant"],
        run_id=r["RunId"],
        parent_run_id=r["ParentRunId"],
        trace_id=r["TraceId"],
        root_span_id=r["RootSpanId"],
        agent_name=r["AgentName"],
        service_name=r["ServiceName"],
        conversation_id=r["ConversationId"],
        user_id=r["UserId"],
        status=Status(r["Status"]),
        started_at=r["StartedAt"],
        ended_at=r["EndedAt"],
        duration_ns=r["DurationNs"],
        node_count=r["NodeCount"],
        failed_nodes=r["FailedNodes"],
        llm_calls=r["LlmCalls"],
        tool_calls=r["ToolCalls"],
        usage=_usage(r),
        cost_usd=r["CostUsd"],
        input_preview=r["InputPreview"],
        output_preview=r["OutputPreview"],
        error_message=r["ErrorMessage"],
        metadata=r["Metadata"],
        ttl_days=r["TtlDays"],
    )


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


def _select_nodes(store: Any, where: str, params: dict[str, Any]) -> list[Node]:
    sql = (
        f"SELECT {', '.join(f'`{c}`' for c in _NODE_COLUMNS)} FROM {store.table(schema.SPANS)} FINAL "
        f"WHERE Tenant = {{tenant:String}} AND {where} ORDER BY Timestamp, SpanId"
    )
    return [_node(row) for row in store.query(sql, params)]


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


def _node(row: tuple) -> Node:
    r = dict(zip(_NODE_COLUMNS, row, strict=True))
    return Node(
        tenant=r["Tenant"],
        trace_id=r["TraceId"],
        span_id=r["SpanId"],
        parent_span_id=r["ParentSpanId"],
        trace_state=r["TraceState"],
        name=r["SpanName"],
        span_kind=r["SpanKind"],
        service_name=r["ServiceName"],
        scope_name=r["ScopeName"],
        scope_version=r["ScopeVersion"],
        resource_attributes=r["ResourceAttributes"],
        attributes=r["SpanAttributes"],
        payload_attributes=r["PayloadAttributes"],
        events=[
            SpanEvent(timestamp=ts, name=name, attributes=attrs)
            for ts, name, attrs in zip(r["Events.Timestamp"], r["Events.Name"], r["Events.Attributes"], strict=True)
        ],
        links=[
            SpanLink(trace_id=t, span_id=s, trace_state=st, attributes=a)
            for t, s, st, a in zip(
                r["Links.TraceId"], r["Links.SpanId"], r["Links.TraceState"], r["Links.Attributes"], strict=True
            )
        ],
        started_at=r["Timestamp"],
        duration_ns=r["Duration"],
        otel_status_code=r["StatusCode"],
        status_message=r["StatusMessage"],
        run_id=r["RunId"],
        parent_run_id=r["ParentRunId"],
        run_root=r["RunRoot"],
        type=NodeType.parse(r["NodeType"]),
        status=Status(r["Status"]),
        operation=r["OperationName"],
        agent_name=r["AgentName"],
        conversation_id=r["ConversationId"],
        user_id=r["UserId"],
        model=r["Model"],
        provider=r["Provider"],
        usage=_usage(r),
        cost_usd=r["CostUsd"],
        input=r["Input"],
        output=r["Output"],
        error_type=r["ErrorType"],
        ttl_days=r["TtlDays"],
        payload_ttl_days=r["PayloadTtlDays"],
    )


def run_summary(store: Any, tenant: str, run_id: str) -> Run | None:
    """One run's row, or None (also for another tenant's run)."""
    sql = (
        f"SELECT {', '.join(_RUN_LIST_COLUMNS)} FROM {store.table(schema.RUNS)} FINAL "
        "WHERE Tenant = {tenant:String} AND RunId = {run_id:String} LIMIT 1"
    )
    rows = store.query(sql, {"tenant": tenant, "run_id": run_id})
    return _run(rows[0]) if rows else None


def run_log_nodes(store: Any, tenant: str, run: Run) -> list[Node]:
    """The nodes of a run in start order: its spans but its own root, and the root spans of its
    sub-agent runs (a sub-agent is one node of its parent run)."""
    return _select_nodes(
        store,
        "Timestamp BETWEEN {start:DateTime64(9)} AND {end:DateTime64(9)} AND "
        "((RunId = {run_id:String} AND NOT RunRoot) OR (RunRoot AND ParentRunId = {run_id:String}))",
        {"tenant": tenant, "run_id": run.run_id, "start": run.started_at, "end": run.ended_at or run.started_at},
    )


def root_output(store: Any, tenant: str, run: Run) -> str:
    """A run's final output, in full (lists only carry its preview)."""
    if not run.root_span_id:
        return ""
    rows = store.query(
        f"SELECT Output FROM {store.table(schema.SPANS)} FINAL WHERE Tenant = {{tenant:String}} "
        "AND Timestamp BETWEEN {start:DateTime64(9)} AND {end:DateTime64(9)} "
        "AND RunId = {run_id:String} AND SpanId = {span_id:String}",
        {
            "tenant": tenant,
            "run_id": run.run_id,
            "span_id": run.root_span_id,
            "start": run.started_at,
            "end": run.ended_at or run.started_at,
        },
    )
    return rows[0][0] if rows else ""


def _select_events(store: Any, where: str, params: dict[str, Any]) -> list[Event]:
    sql = (
        f"SELECT {', '.join(rows.EVENT_COLUMNS)} FROM {store.table(schema.EVENTS)} FINAL "
        f"WHERE Tenant = {{tenant:String}} AND {where} ORDER BY Timestamp, SpanId, Seq"
    )
    return [Event(**dict(zip(rows.EVENT_FIELDS, row, strict=True))) for row in store.query(sql, params)]


def run_events(store: Any, tenant: str, run_id: str) -> list[Event]:
    """The ordered events of one run (its sub-agent runs have their own)."""
    return _select_events(store, "RunId = {run_id:String}", {"tenant": tenant, "run_id": run_id})


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
    done = f"Status != '{Status.RUNNING.value}'"
    sql = f"""
        SELECT {_STATS_GROUPS[group_by]} AS key, count() AS runs,
               countIf(Status = '{Status.COMPLETED.value}') AS completed,
               countIf(Status = '{Status.FAILED.value}') AS failed,
               countIf(Status = '{Status.CANCELLED.value}') AS cancelled,
               countIf(Status = '{Status.RUNNING.value}') AS running,
               if(countIf({done}) = 0, 0, completed / countIf({done})) AS success_rate,
               quantileIf(0.5)(DurationNs, {done}) / 1e9 AS p50_seconds,
               quantileIf(0.95)(DurationNs, {done}) / 1e9 AS p95_seconds,
               avg(NodeCount) AS avg_nodes, sum(LlmCalls) AS llm_calls, sum(InputTokens) AS input_tokens,
               sum(OutputTokens) AS output_tokens, sum(CostUsd) AS cost_usd
        FROM {store.table(schema.RUNS)} FINAL
        WHERE Tenant = {{tenant:String}}{window}
        GROUP BY key ORDER BY runs DESC, key
    """
    return _dicts(store, sql, {"tenant": tenant, **params})


def usage(
    store: Any, tenant: str, *, by: str = "model", since: datetime | None = None, until: datetime | None = None
) -> list[dict[str, Any]]:
    """LLM usage (calls, tokens, cost) grouped by model, provider, agent, user or run."""
    if by not in _USAGE_GROUPS:
        raise ValueError(f"by must be one of {', '.join(_USAGE_GROUPS)}")
    window, params = _window(since, until, "s.Timestamp")
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
    store: Any, tenant: str, *, since: datetime | None = None, until: datetime | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """Nodes by name and type: how often they ran, how slow (p50/p95) and how often they failed,
    slowest first."""
    window, params = _window(since, until, "Timestamp")
    sql = f"""
        SELECT SpanName AS name, NodeType AS type, count() AS executions,
               countIf(Status = '{Status.FAILED.value}') AS failures, failures / executions AS failure_rate,
               quantile(0.5)(Duration) / 1e9 AS p50_seconds, quantile(0.95)(Duration) / 1e9 AS p95_seconds
        FROM {store.table(schema.SPANS)} FINAL
        WHERE Tenant = {{tenant:String}} AND NOT RunRoot AND RunId != ''{window}
        GROUP BY name, type ORDER BY p95_seconds DESC, name LIMIT {{limit:UInt32}}
    """
    return _dicts(store, sql, {"tenant": tenant, "limit": limit, **params})


def _dicts(store: Any, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    result = store.client.query(sql, parameters=params)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

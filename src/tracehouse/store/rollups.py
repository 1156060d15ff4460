"""Summaries derived from the spans: one row per run, and daily statistics per agent.

Both are *recomputed* from their source for the keys that changed, never incremented, so a
span delivered twice, late or out of order never counts twice: the recomputation reads the
deduplicated spans (``FINAL``) and writes a row with a newer ``Version`` that replaces the old
one. The writer calls :func:`refresh_runs` after inserting spans (one statement for thousands
of runs) and :func:`refresh_agent_daily` for the days those runs touched.

Run totals count LLM-call nodes only (``NodeType = 'llm'``): agent spans that repeat their
children's usage are not summed again, and a sub-agent run's calls belong to the sub-run.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from string import Template
from typing import Any

from tracehouse import semconv
from tracehouse.model import PREVIEW_CHARS, NodeType, Status
from tracehouse.store import schema
from tracehouse.store.schema import Layout

CHUNK = 5000  # keys per statement

RUN_COLUMNS = (
    "Tenant", "RunId", "ParentRunId", "TraceId", "RootSpanId", "AgentName", "ServiceName",
    "ConversationId", "UserId", "Status", "StartedAt", "EndedAt", "DurationNs", "NodeCount",
    "FailedNodes", "LlmCalls", "ToolCalls", "InputTokens", "OutputTokens", "CacheReadTokens",
    "CacheCreationTokens", "ReasoningTokens", "CostUsd", "InputPreview", "OutputPreview",
    "ErrorMessage", "Metadata", "TtlDays", "Version",
)  # fmt: skip


def _prefer(column: str) -> str:
    """The run's value of a column: a non-empty one, the root span's first."""
    return f"argMax({column}, ({column} != '', RunRoot))"


def _preview(column: str) -> str:
    return f"leftUTF8(trimBoth(replaceRegexpAll(anyIf({column}, RunRoot), '\\\\s+', ' ')), {{preview:UInt32}})"


_REFRESH_RUNS = f"""
INSERT INTO $runs ({", ".join(RUN_COLUMNS)})
SELECT {", ".join("r_" + c for c in RUN_COLUMNS)}
FROM
(
    SELECT
        Tenant AS r_Tenant,
        RunId AS r_RunId,
        countIf(RunRoot) > 0 AS has_root,
        {_prefer("ParentRunId")} AS r_ParentRunId,
        {_prefer("TraceId")} AS r_TraceId,
        anyIf(SpanId, RunRoot) AS r_RootSpanId,
        {_prefer("AgentName")} AS r_AgentName,
        {_prefer("ServiceName")} AS r_ServiceName,
        {_prefer("ConversationId")} AS r_ConversationId,
        {_prefer("UserId")} AS r_UserId,
        if(has_root, anyIf(Status, RunRoot), '{Status.RUNNING.value}') AS r_Status,
        if(has_root, anyIf(Timestamp, RunRoot), min(Timestamp)) AS r_StartedAt,
        max(addNanoseconds(Timestamp, Duration)) AS r_EndedAt,
        if(has_root, anyIf(Duration, RunRoot),
           toUInt64(greatest(0, toUnixTimestamp64Nano(r_EndedAt) - toUnixTimestamp64Nano(r_StartedAt))))
            AS r_DurationNs,
        toUInt32(countIf(NOT RunRoot)) AS r_NodeCount,
        toUInt32(countIf(NOT RunRoot AND Status = '{Status.FAILED.value}')) AS r_FailedNodes,
        toUInt32(countIf(NodeType = '{NodeType.LLM.value}')) AS r_LlmCalls,
        toUInt32(countIf(NodeType = '{NodeType.TOOL.value}')) AS r_ToolCalls,
        sumIf(InputTokens, NodeType = '{NodeType.LLM.value}') AS r_InputTokens,
        sumIf(OutputTokens, NodeType = '{NodeType.LLM.value}') AS r_OutputTokens,
        sumIf(CacheReadTokens, NodeType = '{NodeType.LLM.value}') AS r_CacheReadTokens,
        sumIf(CacheCreationTokens, NodeType = '{NodeType.LLM.value}') AS r_CacheCreationTokens,
        sumIf(ReasoningTokens, NodeType = '{NodeType.LLM.value}') AS r_ReasoningTokens,
        sumIf(CostUsd, NodeType = '{NodeType.LLM.value}') AS r_CostUsd,
        {_preview("Input")} AS r_InputPreview,
        {_preview("Output")} AS r_OutputPreview,
        if(anyIf(StatusMessage, RunRoot) != '', anyIf(StatusMessage, RunRoot),
           argMinIf(StatusMessage, Timestamp, Status = '{Status.FAILED.value}')) AS r_ErrorMessage,
        mapApply((k, v) -> (substring(k, length({{meta_prefix:String}}) + 1), v),
                 mapFilter((k, v) -> startsWith(k, {{meta_prefix:String}}), anyIf(SpanAttributes, RunRoot)))
            AS r_Metadata,
        if(has_root, anyIf(TtlDays, RunRoot), max(TtlDays)) AS r_TtlDays,
        toUInt64(toUnixTimestamp64Nano(now64(9))) AS r_Version
    FROM $spans FINAL
    WHERE (Tenant, RunId) IN {{keys:Array(Tuple(String, String))}}
    GROUP BY Tenant, RunId
)
"""

# A run row moves to another partition when its start time changes day (the root span, which
# arrives last, started before the first child seen). Partitions never merge with each other,
# so the superseded row is deleted explicitly.
_MOVED_RUNS = """
SELECT Tenant, RunId, argMax(_partition_id, Version)
FROM $runs
WHERE (Tenant, RunId) IN {keys:Array(Tuple(String, String))}
GROUP BY Tenant, RunId
HAVING uniqExact(_partition_id) > 1
"""

_DELETE_SUPERSEDED = """
DELETE FROM $runs_local$on_cluster
WHERE (Tenant, RunId) IN {moved:Array(Tuple(String, String))}
  AND (Tenant, RunId, _partition_id) NOT IN {keep:Array(Tuple(String, String, String))}
"""

_RUN_DAYS = """
SELECT DISTINCT Tenant, toDate(StartedAt)
FROM $runs
WHERE (Tenant, RunId) IN {keys:Array(Tuple(String, String))}
"""

DAILY_COLUMNS = (
    "Tenant", "Day", "AgentName", "Runs", "Completed", "Failed", "Cancelled", "Running", "Nodes",
    "LlmCalls", "ToolCalls", "InputTokens", "OutputTokens", "CostUsd", "DurationSumNs",
    "DurationQuantiles", "TtlDays", "Version",
)  # fmt: skip

# Rows already in the rollup for the refreshed days take part with zero runs, so an agent whose
# runs moved away from a day is rewritten to zero instead of keeping a stale count.
_REFRESH_DAILY = f"""
INSERT INTO $daily ({", ".join(DAILY_COLUMNS)})
SELECT
    Tenant, Day, AgentName,
    countIf(RunId != '') AS d_Runs,
    countIf(Status = '{Status.COMPLETED.value}') AS d_Completed,
    countIf(Status = '{Status.FAILED.value}') AS d_Failed,
    countIf(Status = '{Status.CANCELLED.value}') AS d_Cancelled,
    countIf(Status = '{Status.RUNNING.value}') AS d_Running,
    sum(NodeCount) AS d_Nodes,
    sum(LlmCalls) AS d_LlmCalls,
    sum(ToolCalls) AS d_ToolCalls,
    sum(InputTokens) AS d_InputTokens,
    sum(OutputTokens) AS d_OutputTokens,
    sum(CostUsd) AS d_CostUsd,
    sum(DurationNs) AS d_DurationSumNs,
    quantilesTDigestStateIf(0.5, 0.95)(DurationNs, RunId != '' AND Status != '{Status.RUNNING.value}')
        AS d_DurationQuantiles,
    if(countIf(RunId != '') > 0, maxIf(TtlDays, RunId != ''), max(TtlDays)) AS d_TtlDays,
    toUInt64(toUnixTimestamp64Nano(now64(9))) AS d_Version
FROM
(
    SELECT Tenant, toDate(StartedAt) AS Day, AgentName, RunId, Status, toUInt64(NodeCount) AS NodeCount,
           toUInt64(LlmCalls) AS LlmCalls, toUInt64(ToolCalls) AS ToolCalls, InputTokens, OutputTokens,
           CostUsd, DurationNs, TtlDays
    FROM $runs FINAL
    WHERE (Tenant, toDate(StartedAt)) IN {{days:Array(Tuple(String, Date))}}
    UNION ALL
    SELECT Tenant, Day, AgentName, '' AS RunId, '' AS Status, toUInt64(0), toUInt64(0), toUInt64(0),
           toUInt64(0), toUInt64(0), toFloat64(0), toUInt64(0), TtlDays
    FROM $daily FINAL
    WHERE (Tenant, Day) IN {{days:Array(Tuple(String, Date))}}
)
GROUP BY Tenant, Day, AgentName
"""


def _table_names(layout: Layout) -> dict[str, str]:
    return {
        "spans": layout.table(schema.SPANS),
        "runs": layout.table(schema.RUNS),
        "runs_local": layout.local(schema.RUNS),
        "daily": layout.table(schema.AGENT_DAILY),
        "on_cluster": layout.on_cluster,
    }


def _sql(template: str, names: dict[str, str]) -> str:
    """Put table names into a statement; values are bound as ``{name:Type}`` parameters."""
    return Template(template).substitute(names)


def _chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def refresh_runs(client: Any, layout: Layout, keys: Iterable[tuple[str, str]]) -> set[tuple[str, date]]:
    """Recompute the run rows of ``(tenant, run_id)`` keys; return the (tenant, day)s touched."""
    keys = sorted(set(keys))
    days: set[tuple[str, date]] = set()
    names = _table_names(layout)
    refresh, moved_sql, days_sql, delete = (
        _sql(t, names) for t in (_REFRESH_RUNS, _MOVED_RUNS, _RUN_DAYS, _DELETE_SUPERSEDED)
    )
    for chunk in _chunks(keys):
        params = {"keys": chunk, "preview": PREVIEW_CHARS, "meta_prefix": semconv.TRACEHOUSE_RUN_METADATA + "."}
        client.command(refresh, parameters=params)
        moved = client.query(moved_sql, parameters={"keys": chunk}).result_rows
        # Days are read before the superseded rows go, so the day a run left is refreshed too.
        days.update((tenant, day) for tenant, day in client.query(days_sql, parameters={"keys": chunk}).result_rows)
        if moved:
            client.command(
                delete,
                parameters={
                    "moved": [(tenant, run_id) for tenant, run_id, _ in moved],
                    "keep": [tuple(row) for row in moved],
                },
            )
    return days


def refresh_agent_daily(client: Any, layout: Layout, days: Iterable[tuple[str, date]]) -> None:
    """Recompute the daily per-agent rows of the given ``(tenant, day)`` pairs."""
    days = sorted(set(days))
    sql = _sql(_REFRESH_DAILY, _table_names(layout))
    for chunk in _chunks(days):
        client.command(sql, parameters={"days": chunk})

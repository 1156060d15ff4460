"""Summaries derived from the spans: one row per run, and daily statistics per agent.

Both are *recomputed* from their source for the keys that changed, never incremented, so a
span delivered twice, late or out of order never counts twice: the recomputation reads the
deduplicated spans (``FINAL``) and writes a row with a newer ``Version`` that replaces the old
one. The writer calls :func:`refresh_runs` after inserting spans (a few statements for
thousands of runs) and :func:`refresh_agent_daily` for the minutes those runs started in (the
daily rollup is kept in minute slices, so a refresh reads the runs of a few minutes, not of
the whole day).

A refresh reads only the spans that can belong to its runs: those starting at or after the
run's earliest known start (the older of its row in ``runs`` and its spans in the batch). The
spans table is sorted by time first, so that bound keeps a refresh to recent granules. A run
that has no row yet is computed from the batch that brought it, when the writer has the batch's
span rows in a table of their own (the engine normalizer's): no spans table read at all.

Run totals count LLM-call nodes only (``NodeType = 'llm'``): agent spans that repeat their
children's usage are not summed again, and a sub-agent run's calls belong to the sub-run.

A run's status is its root span's. Until the root arrives the run is ``running``, or
``incomplete`` once its latest span ended longer ago than the run idle timeout: its process
most likely died, and a root that is never ended is never exported. The rule is part of the
row's computation, so a refresh applies it to the spans it reads, and a root that arrives
late replaces ``incomplete`` like any other refresh. Time passing changes no span, so the
writer also sweeps (:class:`IdleRunSweep`): :func:`mark_idle_runs` finds the rows still
``running`` whose latest span is older than the timeout and recomputes them (and the rollup
minutes they are listed under) through the same refresh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from string import Template
from typing import Any

from tracehouse import semconv
from tracehouse.model import DEFAULT_RUN_IDLE_TIMEOUT, NodeType, Status
from tracehouse.store import schema
from tracehouse.store.schema import Layout

log = logging.getLogger(__name__)

CHUNK = 5000  # keys per statement

RUN_COLUMNS = (
    "Tenant", "RunId", "ParentRunId", "TraceId", "RootSpanId", "AgentName", "ServiceName",
    "ConversationId", "UserId", "Status", "StartedAt", "EndedAt", "DurationNs", "NodeCount",
    "FailedNodes", "LlmCalls", "ToolCalls", "InputTokens", "OutputTokens", "CacheReadTokens",
    "CacheCreationTokens", "ReasoningTokens", "CostUsd", "InputPreview", "OutputPreview",
    "ErrorMessage", "Metadata", "TtlDays", "Version",
)  # fmt: skip

# The runs of a refresh travel in a session-scoped temporary table: large array parameters are
# slow to parse, and GLOBAL IN ships the keys to every shard of a cluster.
KEYS_TABLE = "tracehouse_refresh_keys"
_CREATE_KEYS = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {KEYS_TABLE} "
    "(Tenant String, RunId String, Since DateTime64(9), Day Date) ENGINE = Memory"
)
_KEYS = f"(Tenant, RunId) GLOBAL IN (SELECT Tenant, RunId FROM {KEYS_TABLE} WHERE Day = {{day:Date}})"
_LLM = f"NodeType = '{NodeType.LLM.value}'"
# Runs whose root span arrived: the statuses whose durations are whole.
_FINISHED = f"Status IN ('{Status.COMPLETED.value}', '{Status.FAILED.value}', '{Status.CANCELLED.value}')"


def _prefer(column: str) -> str:
    """The run's value of a column: a non-empty one, the root span's first."""
    return f"argMax({column}, ({column} != '', RunRoot))"


# A run's agent is its root's; without the root (its process died), that of a span of it that is
# not an agent node: tracehouse.instrument stamps the run's agent on those, an agent node has its own.
_RUN_ROWS = f"""
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
        argMax(AgentName, (AgentName != '', RunRoot, NodeType != '{NodeType.AGENT.value}')) AS r_AgentName,
        {_prefer("ServiceName")} AS r_ServiceName,
        {_prefer("ConversationId")} AS r_ConversationId,
        {_prefer("UserId")} AS r_UserId,
        if(has_root, anyIf(Status, RunRoot),
           if(r_EndedAt < subtractNanoseconds(now64(9), {{idle_ns:Int64}}),
              '{Status.INCOMPLETE.value}', '{Status.RUNNING.value}')) AS r_Status,
        min(Timestamp) AS r_StartedAt,
        max(addNanoseconds(Timestamp, Duration)) AS r_EndedAt,
        if(has_root, anyIf(Duration, RunRoot),
           toUInt64(greatest(0, toUnixTimestamp64Nano(r_EndedAt) - toUnixTimestamp64Nano(r_StartedAt))))
            AS r_DurationNs,
        toUInt32(countIf(NOT RunRoot)) AS r_NodeCount,
        toUInt32(countIf(NOT RunRoot AND Status = '{Status.FAILED.value}')) AS r_FailedNodes,
        toUInt32(countIf({_LLM})) AS r_LlmCalls,
        toUInt32(countIf(NodeType = '{NodeType.TOOL.value}')) AS r_ToolCalls,
        sumIf(InputTokens, {_LLM}) AS r_InputTokens,
        sumIf(OutputTokens, {_LLM}) AS r_OutputTokens,
        sumIf(CacheReadTokens, {_LLM}) AS r_CacheReadTokens,
        sumIf(CacheCreationTokens, {_LLM}) AS r_CacheCreationTokens,
        sumIf(ReasoningTokens, {_LLM}) AS r_ReasoningTokens,
        sumIf(CostUsd, {_LLM}) AS r_CostUsd,
        anyIf(InputPreview, RunRoot) AS r_InputPreview,
        anyIf(OutputPreview, RunRoot) AS r_OutputPreview,
        if(anyIf(StatusMessage, RunRoot) != '', anyIf(StatusMessage, RunRoot),
           argMinIf(StatusMessage, Timestamp, Status = '{Status.FAILED.value}')) AS r_ErrorMessage,
        mapApply((k, v) -> (substring(k, length({{meta_prefix:String}}) + 1), v),
                 mapFilter((k, v) -> startsWith(k, {{meta_prefix:String}}), anyIf(SpanAttributes, RunRoot)))
            AS r_Metadata,
        if(has_root, anyIf(TtlDays, RunRoot), max(TtlDays)) AS r_TtlDays,
        toUInt64(toUnixTimestamp64Nano(now64(9))) AS r_Version
    FROM $source
    WHERE $where
    GROUP BY Tenant, RunId
)
"""

# A run's row recomputed from its stored spans (deduplicated), from its earliest start on.
_REFRESH_RUNS = Template(_RUN_ROWS).safe_substitute(
    source="$spans FINAL", where=f"{_KEYS} AND Timestamp >= {{since:DateTime64(9)}}"
)

# A new run's row computed from the batch that brings all its spans: a table of canonical span
# rows that were just inserted, duplicates within it counted once (as FINAL would).
_BATCH_RUNS = Template(_RUN_ROWS).safe_substitute(
    source=f"(SELECT * FROM $batch LIMIT 1 BY {schema.SPANS_TABLE.order_by.strip('()')})",
    where=f"(Tenant, RunId) IN (SELECT Tenant, RunId FROM {KEYS_TABLE})",
)

# The earliest start each run is known by: spans older than it cannot belong to the run.
_KNOWN_STARTS = f"""
SELECT Tenant, RunId, min(StartedAt)
FROM $runs
WHERE (Tenant, RunId) GLOBAL IN (SELECT Tenant, RunId FROM {KEYS_TABLE})
GROUP BY Tenant, RunId
"""

# A run's row is keyed by its start; when the start moved, the row under the old key is
# superseded (FINAL keeps one row per key, and the newest version per run is the live one):
# it gets a tombstone with the same key, which FINAL then hides.
_TOMBSTONES = f"""
INSERT INTO $runs (Tenant, RunId, StartedAt, TtlDays, Version, IsDeleted)
SELECT Tenant, RunId, StartedAt, TtlDays, toUInt64(toUnixTimestamp64Nano(now64(9))), 1
FROM
(
    SELECT Tenant, RunId, StartedAt, TtlDays, Version, max(Version) OVER (PARTITION BY Tenant, RunId) AS latest
    FROM $runs FINAL
    WHERE {_KEYS} AND StartedAt >= {{since:DateTime64(9)}}
)
WHERE Version < latest
"""

# Every minute a run of the batch was listed under, before or after this refresh (no FINAL:
# the superseded rows tell the minutes runs left), for the daily rollup.
_RUN_MINUTES = f"""
SELECT DISTINCT Tenant, toStartOfMinute(StartedAt)
FROM $runs
WHERE {_KEYS} AND StartedAt >= {{since:DateTime64(9)}}
"""

DAILY_COLUMNS = (
    "Tenant", "Day", "AgentName", "Minute", "Runs", "Completed", "Failed", "Cancelled", "Running", "Incomplete",
    "Nodes", "LlmCalls", "ToolCalls", "InputTokens", "OutputTokens", "CostUsd", "DurationSumNs",
    "DurationQuantiles", "TtlDays", "Version",
)  # fmt: skip

# The rollup's rows of the minutes ``$runs_where`` and ``$daily_where`` select, recomputed from
# the runs. Rows already in the rollup for those minutes take part with zero runs, so an agent
# whose runs moved away from a minute is rewritten to zero instead of keeping a stale count.
DAILY_ROWS = f"""
INSERT INTO $daily ({", ".join(DAILY_COLUMNS)})
SELECT
    Tenant, Day, AgentName, Minute,
    countIf(RunId != '') AS d_Runs,
    countIf(Status = '{Status.COMPLETED.value}') AS d_Completed,
    countIf(Status = '{Status.FAILED.value}') AS d_Failed,
    countIf(Status = '{Status.CANCELLED.value}') AS d_Cancelled,
    countIf(Status = '{Status.RUNNING.value}') AS d_Running,
    countIf(Status = '{Status.INCOMPLETE.value}') AS d_Incomplete,
    sum(NodeCount) AS d_Nodes,
    sum(LlmCalls) AS d_LlmCalls,
    sum(ToolCalls) AS d_ToolCalls,
    sum(InputTokens) AS d_InputTokens,
    sum(OutputTokens) AS d_OutputTokens,
    sum(CostUsd) AS d_CostUsd,
    sum(DurationNs) AS d_DurationSumNs,
    quantilesTDigestStateIf(0.5, 0.95)(DurationNs, RunId != '' AND {_FINISHED})
        AS d_DurationQuantiles,
    if(countIf(RunId != '') > 0, maxIf(TtlDays, RunId != ''), max(TtlDays)) AS d_TtlDays,
    toUInt64(toUnixTimestamp64Nano(now64(9))) AS d_Version
FROM
(
    SELECT Tenant, toDate(StartedAt) AS Day, AgentName, toStartOfMinute(StartedAt) AS Minute, RunId, Status,
           toUInt64(NodeCount) AS NodeCount, toUInt64(LlmCalls) AS LlmCalls, toUInt64(ToolCalls) AS ToolCalls,
           InputTokens, OutputTokens, CostUsd, DurationNs, TtlDays
    FROM $runs FINAL
    WHERE $runs_where
    UNION ALL
    SELECT Tenant, Day, AgentName, Minute, '' AS RunId, '' AS Status, toUInt64(0), toUInt64(0), toUInt64(0),
           toUInt64(0), toUInt64(0), toFloat64(0), toUInt64(0), TtlDays
    FROM $daily FINAL
    WHERE $daily_where
)
GROUP BY Tenant, Day, AgentName, Minute
"""

# The given minutes; the bounds let the runs' sorting key (start time) skip the rest of the day.
_REFRESH_DAILY = Template(DAILY_ROWS).safe_substitute(
    runs_where="StartedAt >= {lo:DateTime64(9)} AND StartedAt < {hi:DateTime64(9)} "
    "AND (Tenant, toStartOfMinute(StartedAt)) IN {minutes:Array(Tuple(String, DateTime))}",
    daily_where="Day >= toDate({lo:DateTime64(9)}) AND Day <= toDate({hi:DateTime64(9)}) "
    "AND (Tenant, Minute) IN {minutes:Array(Tuple(String, DateTime))}",
)

# Every minute of every run: what fills the rollup from scratch (a schema migration).
REBUILD_DAILY = Template(DAILY_ROWS).safe_substitute(runs_where="1", daily_where="0")


@dataclass(frozen=True)
class BatchSpans:
    """A (temporary) table of span rows just inserted, with the spans table's columns, and the
    runs it holds spans of, each with its earliest start there."""

    table: str
    runs: Mapping[tuple[str, str], datetime]


def _table_names(layout: Layout) -> dict[str, str]:
    return {
        "spans": layout.table(schema.SPANS),
        "runs": layout.table(schema.RUNS),
        "runs_by_id": layout.table(schema.RUNS_BY_ID),
        "daily": layout.table(schema.AGENT_DAILY),
    }


def _sql(template: str, names: dict[str, str]) -> str:
    """Put table names into a statement; values are bound as ``{name:Type}`` parameters."""
    return Template(template).substitute(names)


def _chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def refresh_runs(
    client: Any,
    layout: Layout,
    seen: Mapping[tuple[str, str], datetime],
    batch: BatchSpans | None = None,
    *,
    idle_seconds: float = DEFAULT_RUN_IDLE_TIMEOUT,
) -> set[tuple[str, datetime]]:
    """Recompute the rows of runs that received spans; return the (tenant, minute)s touched.

    ``seen`` maps each ``(tenant, run_id)`` to the earliest start among its spans just written.
    ``batch`` names a table holding the canonical rows of spans just inserted and the runs all
    of whose spans of the batch are in it (and in ``seen``): such a run that has no row yet gets
    one computed from that table, without reading the spans table (a run without a row has no
    committed spans: every batch that stores spans refreshes their runs before it is committed).
    A run without its root whose latest span ended more than ``idle_seconds`` ago is
    ``incomplete``.
    """
    names = _table_names(layout)
    refresh, known, tombstones, run_minutes = (
        _sql(t, names) for t in (_REFRESH_RUNS, _KNOWN_STARTS, _TOMBSTONES, _RUN_MINUTES)
    )
    meta_prefix = semconv.TRACEHOUSE_RUN_METADATA + "."
    idle_ns = round(idle_seconds * 1e9)
    minutes: set[tuple[str, datetime]] = set()
    client.command(_CREATE_KEYS)
    for chunk in _chunks(sorted(seen)):
        since = {key: _naive_utc(seen[key]) for key in chunk}
        _load_keys(client, since)
        known_starts = {(tenant, run_id): started for tenant, run_id, started in client.query(known).result_rows}
        new = {key: start for key, start in since.items() if batch and key not in known_starts and key in batch.runs}
        if new:
            _load_keys(client, new)
            client.command(
                _sql(_BATCH_RUNS, {**names, "batch": batch.table}),
                parameters={"meta_prefix": meta_prefix, "idle_ns": idle_ns},
            )
            minutes.update((tenant, minute_of(start)) for (tenant, _), start in new.items())
        since = {key: min(start, known_starts.get(key, start)) for key, start in since.items() if key not in new}
        if not since:
            continue
        # Keys are grouped by the day of their earliest start, and each group's statements read
        # spans from that group's earliest start on: a tight time bound for each.
        _load_keys(client, since)
        groups: dict[date, datetime] = {}
        for start in since.values():
            groups[start.date()] = min(start, groups.get(start.date(), start))
        for day, group_since in sorted(groups.items()):
            params = {"day": day, "since": group_since, "meta_prefix": meta_prefix, "idle_ns": idle_ns}
            client.command(refresh, parameters=params)
            client.command(tombstones, parameters=params)
            listed = client.query(run_minutes, parameters=params).result_rows
            minutes.update((tenant, _naive_utc(minute)) for tenant, minute in listed)
    client.command(f"TRUNCATE TABLE {KEYS_TABLE}")
    return minutes


def _load_keys(client: Any, since: Mapping[tuple[str, str], datetime]) -> None:
    client.command(f"TRUNCATE TABLE {KEYS_TABLE}")
    client.insert(
        KEYS_TABLE,
        [[tenant, run_id, start, start.date()] for (tenant, run_id), start in since.items()],
        column_names=["Tenant", "RunId", "Since", "Day"],
    )


def _naive_utc(value: datetime) -> datetime:
    """Bound parameters are read in the session time zone (UTC): pass naive UTC datetimes."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def minute_of(value: datetime) -> datetime:
    """The minute slice of the daily rollup a run starting at ``value`` belongs to (naive UTC)."""
    return _naive_utc(value).replace(second=0, microsecond=0)


# Minutes further apart than this are recomputed by statements of their own, each reading only
# the runs between its first and last minute.
_MINUTES_APART = timedelta(minutes=10)


def refresh_agent_daily(client: Any, layout: Layout, minutes: Iterable[tuple[str, datetime]]) -> None:
    """Recompute the daily per-agent rows of the given ``(tenant, minute)`` slices (a minute is
    the start of one, naive UTC: :func:`minute_of`)."""
    ordered = sorted({(tenant, minute_of(minute)) for tenant, minute in minutes}, key=lambda tm: (tm[1], tm[0]))
    sql = _sql(_REFRESH_DAILY, _table_names(layout))
    groups: list[list[tuple[str, datetime]]] = []
    for item in ordered:
        if groups and item[1] - groups[-1][-1][1] <= _MINUTES_APART and len(groups[-1]) < CHUNK:
            groups[-1].append(item)
        else:
            groups.append([item])
    for group in groups:
        params = {"minutes": group, "lo": group[0][1], "hi": group[-1][1] + timedelta(minutes=1)}
        client.command(sql, parameters=params)


# --------------------------------------------------------------------------------------------
# Runs that went quiet without their root: incomplete


@dataclass(frozen=True)
class IdleRun:
    """A run that turned ``incomplete``: its root span has not arrived, and its latest span
    ended at ``last_span_at`` (naive UTC, as stored), longer ago than the idle timeout."""

    tenant: str
    run_id: str
    agent_name: str
    started_at: datetime
    last_span_at: datetime
    duration_ns: int


# Runs that had a row still running whose latest span ended in the window: every version is
# read (no FINAL), so the index on EndedAt skips the granules of runs that ended outside it.
# Superseded versions make false candidates, which the current rows then rule out.
_IDLE_CANDIDATES = f"""
SELECT Tenant, RunId, min(StartedAt)
FROM $runs
WHERE Status = '{Status.RUNNING.value}' AND EndedAt >= {{after:DateTime64(9)}} AND EndedAt < {{before:DateTime64(9)}}
GROUP BY Tenant, RunId
"""

# The current rows of the keys' runs with a status (FINAL on the copy sorted by run id reads
# only their granules, and hides superseded and tombstoned rows).
_CURRENT_RUNS = f"""
SELECT Tenant, RunId, AgentName, StartedAt, EndedAt, DurationNs
FROM $runs_by_id FINAL
WHERE (Tenant, RunId) GLOBAL IN (SELECT Tenant, RunId FROM {KEYS_TABLE})
  AND Status = {{status:String}} AND EndedAt < {{before:DateTime64(9)}} AND {schema.RUN_EXPIRES} > now()
"""

_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class IdleSweep:
    """What one :func:`mark_idle_runs` did."""

    runs: list[IdleRun]  # the runs it turned incomplete
    before: datetime  # it looked at the runs whose latest span ended before this (naive UTC)
    complete: bool  # False: it stopped at its limit, and the same call again does the rest


def mark_idle_runs(
    client: Any, layout: Layout, idle_seconds: float, *, after: datetime | None = None, limit: int = CHUNK
) -> IdleSweep:
    """Recompute the runs still ``running`` whose latest span ended more than ``idle_seconds``
    ago, which the refresh's own rule turns ``incomplete``, and the daily rollup minutes they
    are listed under. Only runs whose latest span ended at or after ``after`` (naive UTC) are
    looked at: a sweep's ``before`` less a margin, so the next sweep reads only what went quiet
    since (None: every run kept). At most about ``limit`` runs are recomputed, so a backlog
    (the first sweep of a store with many quiet runs) is worked through a part at a time.
    """
    names = _table_names(layout)
    (now,) = client.query("SELECT now64(9)").result_rows[0]
    before = _naive_utc(now) - timedelta(seconds=idle_seconds)
    candidates = client.query(
        _sql(_IDLE_CANDIDATES, names), parameters={"after": _naive_utc(after or _EPOCH), "before": before}
    ).result_rows
    current = _sql(_CURRENT_RUNS, names)

    def current_rows(status: Status) -> list[tuple]:
        return client.query(current, parameters={"status": status.value, "before": before}).result_rows

    turned: list[IdleRun] = []
    recomputed = 0
    client.command(_CREATE_KEYS)
    for chunk in _chunks(sorted(candidates), max(1, min(CHUNK, limit))):
        if recomputed >= limit:  # and candidates are left
            client.command(f"TRUNCATE TABLE {KEYS_TABLE}")
            return IdleSweep(turned, before, complete=False)
        _load_keys(client, {(tenant, run_id): _naive_utc(start) for tenant, run_id, start in chunk})
        running = {(row[0], row[1]): _naive_utc(row[3]) for row in current_rows(Status.RUNNING)}
        if not running:
            continue
        refresh_agent_daily(client, layout, refresh_runs(client, layout, running, idle_seconds=idle_seconds))
        recomputed += len(running)
        _load_keys(client, running)
        turned += [IdleRun(*row) for row in current_rows(Status.INCOMPLETE)]
    client.command(f"TRUNCATE TABLE {KEYS_TABLE}")
    return IdleSweep(turned, before, complete=True)


# Sweeps overlap by this much: rows written by other receivers, or through a Distributed table,
# may become visible a little after their latest span's end was already behind a sweep's bound.
_SWEEP_OVERLAP = timedelta(minutes=5)
_SWEEP_EVERY = 60.0  # seconds, at most; a quarter of the idle timeout when that is shorter


class IdleRunSweep:
    """The writer's periodic call of :func:`mark_idle_runs`: every minute (or a quarter of
    the idle timeout, if shorter) with the store's ``run_idle_timeout``. The first sweep looks
    at every run kept (runs that went quiet while no server ran, and those stored before this
    status existed), a part at a time between the writer's batches if they are many; later
    ones at what went quiet since the previous one. ``listeners`` get the runs each sweep
    turned incomplete (the live stream). A failed sweep is logged and tried again at the next
    turn; it never stops the writer."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[list[IdleRun]], None]] = []
        self._due = 0.0
        self._after: datetime | None = None

    def __call__(self, store: Any) -> None:
        """Sweep ``store`` (an open :class:`~tracehouse.store.Store`; None: not connected yet)
        if a sweep is due."""
        if store is None or time.monotonic() < self._due:
            return
        idle = store.run_idle_timeout
        self._due = time.monotonic() + min(_SWEEP_EVERY, idle / 4)
        try:
            sweep = mark_idle_runs(store.client, store.layout, idle, after=self._after)
        except Exception as exc:
            log.warning("looking for runs that went quiet failed (%s); trying again later", str(exc)[:300])
            return
        if sweep.complete:
            self._after = sweep.before - _SWEEP_OVERLAP
        else:
            self._due = 0.0  # a backlog: the rest at the writer's next turn, between its batches
        if sweep.runs:
            log.info("%d run(s) without their root span went quiet: incomplete", len(sweep.runs))
        for listener in self.listeners if sweep.runs else ():
            try:
                listener(sweep.runs)
            except Exception:
                log.exception("a listener of incomplete runs failed")

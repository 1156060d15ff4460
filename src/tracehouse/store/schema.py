"""The ClickHouse schema of tracehouse, rendered for one server or for a cluster.

Each table is declared once as a :class:`TableSpec`. :class:`Layout` renders it either as a
plain table (the embedded store and a single server) or, with a cluster name, as a
``Replicated*`` local table ``<name>_local`` created ``ON CLUSTER`` plus a ``Distributed`` table
``<name>`` over it, so that reads and inserts use the same names in both modes.

Retention rules shared by the data tables (see docs/schema.md):

* every row carries ``TtlDays`` (and ``PayloadTtlDays`` where it has payload columns) and the
  partition key includes them beside the day, so all rows of a part expire together and TTL
  drops whole parts (``ttl_only_drop_parts = 1``);
* payload columns (inputs, outputs, messages, event attributes) carry a column TTL on
  ``PayloadTtlDays`` and may therefore expire before the summary columns;
* the dedup key (tenant, trace id, span id) is part of each table's sorting key, and the
  ``Replacing`` engines collapse duplicates; reads that must be exact use ``FINAL``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tracehouse import semconv
from tracehouse.model import DEFAULT_TENANT, DEFAULT_TTL_DAYS
from tracehouse.store.dsn import DEFAULT_DATABASE

SPANS = "otel_traces"
TRACE_ID_TS = "otel_traces_trace_id_ts"
TRACE_ID_TS_MV = "otel_traces_trace_id_ts_mv"
RUNS = "runs"
RUNS_BY_ID = "runs_by_id"
RUNS_BY_ID_MV = "runs_by_id_mv"
EVENTS = "events"
LOGS = "otel_logs"
AGENT_DAILY = "agent_daily"
TENANTS = "tenants"
MIGRATIONS = "schema_migrations"

# Columns holding prompts, completions, tool I/O and other large content: they carry the payload
# TTL, and no list view may read them.
PAYLOAD_COLUMNS = frozenset({"Input", "Output", "PayloadAttributes", "Events.Attributes", "Content"})

DEDUP_WINDOW = 1000  # recent insert blocks remembered for insert_deduplication_token
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class TableSpec:
    """One table: columns and indexes, engine, keys, TTL and the sharding key for a cluster."""

    name: str
    body: str  # column and index definitions
    engine: str  # engine name without Replicated, e.g. "ReplacingMergeTree"
    order_by: str
    engine_args: str = ""  # e.g. "Version" for ReplacingMergeTree(Version)
    partition_by: str | None = None
    primary_key: str | None = None
    ttl: str | None = None
    settings: dict[str, str | int] = field(default_factory=dict)
    sharding_key: str = "rand()"


@dataclass(frozen=True)
class ViewSpec:
    """A materialized view from one table of the schema into another."""

    name: str
    source: str
    target: str
    select: str  # uses {source} for the source table


@dataclass(frozen=True)
class Layout:
    """Where the schema lives: a database, and optionally a cluster to replicate it over."""

    database: str = DEFAULT_DATABASE
    cluster: str | None = None

    def __post_init__(self) -> None:
        for value, what in ((self.database, "database"), (self.cluster, "cluster")):
            if value is not None and not _IDENTIFIER.match(value):
                raise ValueError(f"{what} name {value!r} must be a plain identifier (letters, digits, _)")

    # names -----------------------------------------------------------------------------------

    def table(self, name: str) -> str:
        """The table that reads and inserts use (the Distributed one on a cluster)."""
        return f"{self.database}.{name}"

    def local(self, name: str) -> str:
        """The table that holds the data: the target of mutations (DELETE, MATERIALIZE TTL)."""
        return f"{self.database}.{name}_local" if self.cluster else f"{self.database}.{name}"

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER {self.cluster}" if self.cluster else ""

    # rendering -------------------------------------------------------------------------------

    def create_database(self) -> str:
        return f"CREATE DATABASE IF NOT EXISTS {self.database}{self.on_cluster}"

    def create_table(self, spec: TableSpec) -> list[str]:
        """CREATE statements for one table: one plain table, or local + Distributed."""
        settings = dict(spec.settings)
        if self.cluster:
            zk_path = f"'/clickhouse/tables/{{shard}}/{self.database}/{spec.name}_local'"
            args = ", ".join(a for a in (zk_path, "'{replica}'", spec.engine_args) if a)
            engine = f"Replicated{spec.engine}({args})"
        else:
            engine = f"{spec.engine}({spec.engine_args})"
            if spec.engine.endswith("MergeTree"):
                settings.setdefault("non_replicated_deduplication_window", DEDUP_WINDOW)
        clauses = [f"ENGINE = {engine}"]
        if spec.partition_by:
            clauses.append(f"PARTITION BY {spec.partition_by}")
        if spec.primary_key:
            clauses.append(f"PRIMARY KEY {spec.primary_key}")
        clauses.append(f"ORDER BY {spec.order_by}")
        if spec.ttl:
            clauses.append(f"TTL {spec.ttl}")
        if settings:
            clauses.append("SETTINGS " + ", ".join(f"{k} = {v}" for k, v in settings.items()))
        body = _indent(spec.body)
        statements = [
            f"CREATE TABLE IF NOT EXISTS {self.local(spec.name)}{self.on_cluster}\n(\n{body}\n)\n" + "\n".join(clauses)
        ]
        if self.cluster:
            statements.append(
                f"CREATE TABLE IF NOT EXISTS {self.table(spec.name)}{self.on_cluster}\n"
                f"AS {self.local(spec.name)}\n"
                f"ENGINE = Distributed({self.cluster}, {self.database}, {spec.name}_local, {spec.sharding_key})"
            )
        return statements

    def drop_table(self, name: str) -> list[str]:
        """DROP statements for one table (on a cluster, the Distributed one and the local ones)."""
        targets = ([self.table(name)] if self.cluster else []) + [self.local(name)]
        return [f"DROP TABLE IF EXISTS {target}{self.on_cluster} SYNC" for target in targets]

    def set_defaults(self, name: str, defaults: dict[str, str]) -> list[str]:
        """ALTER statements giving columns of one table DEFAULT expressions (on a cluster, the
        local tables and the Distributed one, whose defaults apply to inserts through it)."""
        clauses = ",\n".join(f"    MODIFY COLUMN {column} DEFAULT {expr}" for column, expr in defaults.items())
        targets = [self.local(name)] + ([self.table(name)] if self.cluster else [])
        return [f"ALTER TABLE {target}{self.on_cluster}\n{clauses}" for target in targets]

    def add_columns(self, name: str, columns: dict[str, str]) -> list[str]:
        """ALTER statements adding columns (name -> type and position) to one table, where they
        are missing (on a cluster, to the local tables and the Distributed one)."""
        clauses = ",\n".join(f"    ADD COLUMN IF NOT EXISTS {column} {spec}" for column, spec in columns.items())
        targets = [self.local(name)] + ([self.table(name)] if self.cluster else [])
        return [f"ALTER TABLE {target}{self.on_cluster}\n{clauses}" for target in targets]

    def add_indexes(self, name: str, indexes: dict[str, str]) -> list[str]:
        """ALTER statements adding data skipping indexes (name -> definition) to the table that
        holds the data, where they are missing. Parts written before get the index as they merge."""
        clauses = ",\n".join(f"    ADD INDEX IF NOT EXISTS {index} {spec}" for index, spec in indexes.items())
        return [f"ALTER TABLE {self.local(name)}{self.on_cluster}\n{clauses}"]

    def create_view(self, spec: ViewSpec) -> list[str]:
        # On a cluster the view lives beside each local table and writes to the local target.
        select = spec.select.format(source=self.local(spec.source))
        return [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {self.database}.{spec.name}{self.on_cluster}\n"
            f"TO {self.local(spec.target)}\nAS {select}"
        ]


def _indent(text: str) -> str:
    return "\n".join("    " + line.strip() for line in text.strip().splitlines())


# --------------------------------------------------------------------------------------------
# TTL expressions
# --------------------------------------------------------------------------------------------

_ROW_TTL = "toDateTime(Timestamp) + toIntervalDay(TtlDays)"
_PAYLOAD_TTL = "toDateTime(Timestamp) + toIntervalDay(PayloadTtlDays)"
_DAY_PARTITION = "(toDate(Timestamp), TtlDays, PayloadTtlDays)"
# When a run row expires: the runs tables' TTL, and the filter of reads that may see expired rows.
RUN_EXPIRES = "toDateTime(StartedAt) + toIntervalDay(TtlDays)"
_DROP_PARTS = {"index_granularity": 8192, "ttl_only_drop_parts": 1}

# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

# Raw spans with the OpenTelemetry Collector ClickHouse exporter's column names (so Grafana's
# ClickHouse datasource reads them as traces), and the canonical columns beside them. The
# Events/Links nested columns are spelled as their flattened arrays so that the event
# attributes (exception traces, per-message content) can take the payload TTL.
SPANS_TABLE = TableSpec(
    name=SPANS,
    body=f"""
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    `Events.Timestamp` Array(DateTime64(9)) CODEC(ZSTD(1)),
    `Events.Name` Array(LowCardinality(String)) CODEC(ZSTD(1)),
    `Events.Attributes` Array(Map(LowCardinality(String), String)) CODEC(ZSTD(3)) TTL {_PAYLOAD_TTL},
    `Links.TraceId` Array(String) CODEC(ZSTD(1)),
    `Links.SpanId` Array(String) CODEC(ZSTD(1)),
    `Links.TraceState` Array(String) CODEC(ZSTD(1)),
    `Links.Attributes` Array(Map(LowCardinality(String), String)) CODEC(ZSTD(1)),
    Tenant LowCardinality(String) CODEC(ZSTD(1)),
    RunId String CODEC(ZSTD(1)),
    ParentRunId String CODEC(ZSTD(1)),
    RunRoot Bool CODEC(ZSTD(1)),
    NodeType LowCardinality(String) CODEC(ZSTD(1)),
    Status LowCardinality(String) CODEC(ZSTD(1)),
    OperationName LowCardinality(String) CODEC(ZSTD(1)),
    AgentName LowCardinality(String) CODEC(ZSTD(1)),
    ConversationId String CODEC(ZSTD(1)),
    UserId String CODEC(ZSTD(1)),
    Model LowCardinality(String) CODEC(ZSTD(1)),
    Provider LowCardinality(String) CODEC(ZSTD(1)),
    InputTokens UInt64 CODEC(T64, ZSTD(1)),
    OutputTokens UInt64 CODEC(T64, ZSTD(1)),
    CacheReadTokens UInt64 CODEC(T64, ZSTD(1)),
    CacheCreationTokens UInt64 CODEC(T64, ZSTD(1)),
    ReasoningTokens UInt64 CODEC(T64, ZSTD(1)),
    CostUsd Float64 CODEC(ZSTD(1)),
    ErrorType LowCardinality(String) CODEC(ZSTD(1)),
    InputPreview String CODEC(ZSTD(1)),
    OutputPreview String CODEC(ZSTD(1)),
    Input String CODEC(ZSTD(3)) TTL {_PAYLOAD_TTL},
    Output String CODEC(ZSTD(3)) TTL {_PAYLOAD_TTL},
    PayloadAttributes Map(LowCardinality(String), String) CODEC(ZSTD(3)) TTL {_PAYLOAD_TTL},
    TtlDays UInt16 CODEC(ZSTD(1)),
    PayloadTtlDays UInt16 CODEC(ZSTD(1)),
    IngestedAt DateTime64(3) DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1,
    INDEX idx_run_id RunId TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_conversation ConversationId TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_ingested IngestedAt TYPE minmax GRANULARITY 1
    """,
    engine="ReplacingMergeTree",
    partition_by=_DAY_PARTITION,
    # Time first, so that reads bounded by time (a run's window, a refresh, a dashboard) touch
    # only the granules of that time; then the run, so a run's spans of one minute sit together.
    order_by="(Tenant, toStartOfMinute(Timestamp), RunId, TraceId, SpanId)",
    ttl=_ROW_TTL,
    settings=_DROP_PARTS,
    sharding_key="cityHash64(Tenant, RunId)",
)

# The Collector's trace id -> time range lookup, which Grafana uses to narrow trace queries.
TRACE_ID_TS_TABLE = TableSpec(
    name=TRACE_ID_TS,
    body="""
    TraceId String CODEC(ZSTD(1)),
    Start DateTime CODEC(Delta, ZSTD(1)),
    End DateTime CODEC(Delta, ZSTD(1)),
    TtlDays UInt16 CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
    """,
    engine="ReplacingMergeTree",
    partition_by="(toDate(Start), TtlDays)",
    order_by="(TraceId, Start)",
    ttl="Start + toIntervalDay(TtlDays)",
    settings=_DROP_PARTS,
    sharding_key="cityHash64(TraceId)",
)

TRACE_ID_TS_VIEW = ViewSpec(
    name=TRACE_ID_TS_MV,
    source=SPANS,
    target=TRACE_ID_TS,
    select="""SELECT
    TraceId,
    toDateTime(min(Timestamp)) AS Start,
    toDateTime(max(Timestamp)) AS End,
    max(TtlDays) AS TtlDays
FROM {source}
WHERE TraceId != ''
GROUP BY TraceId""",
)

# One row per run, rewritten (a new Version) each time spans of the run arrive. Sorted by start
# time, so the history list reads the newest granules only. When a run's start moves (an earlier
# span arrives), the row under the old key gets a tombstone (IsDeleted = 1). List views read only
# these small columns; a run's full input and output stay on its root span.
_RUN_COLUMNS = """
    Tenant LowCardinality(String) CODEC(ZSTD(1)),
    RunId String CODEC(ZSTD(1)),
    ParentRunId String CODEC(ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    RootSpanId String CODEC(ZSTD(1)),
    AgentName LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ConversationId String CODEC(ZSTD(1)),
    UserId String CODEC(ZSTD(1)),
    Status LowCardinality(String) CODEC(ZSTD(1)),
    StartedAt DateTime64(9) CODEC(Delta, ZSTD(1)),
    EndedAt DateTime64(9) CODEC(Delta, ZSTD(1)),
    DurationNs UInt64 CODEC(T64, ZSTD(1)),
    NodeCount UInt32 CODEC(T64, ZSTD(1)),
    FailedNodes UInt32 CODEC(T64, ZSTD(1)),
    LlmCalls UInt32 CODEC(T64, ZSTD(1)),
    ToolCalls UInt32 CODEC(T64, ZSTD(1)),
    InputTokens UInt64 CODEC(T64, ZSTD(1)),
    OutputTokens UInt64 CODEC(T64, ZSTD(1)),
    CacheReadTokens UInt64 CODEC(T64, ZSTD(1)),
    CacheCreationTokens UInt64 CODEC(T64, ZSTD(1)),
    ReasoningTokens UInt64 CODEC(T64, ZSTD(1)),
    CostUsd Float64 CODEC(ZSTD(1)),
    InputPreview String CODEC(ZSTD(1)),
    OutputPreview String CODEC(ZSTD(1)),
    ErrorMessage String CODEC(ZSTD(1)),
    Metadata Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    TtlDays UInt16 CODEC(ZSTD(1)),
    Version UInt64 CODEC(ZSTD(1)),
    IsDeleted UInt8 CODEC(ZSTD(1))
"""

# What finds the runs that went quiet (rollups.mark_idle_runs): the end of a run's latest span,
# which the start order keeps close together within a granule.
RUNS_ENDED_INDEX = {"idx_ended": "EndedAt TYPE minmax GRANULARITY 1"}

RUNS_TABLE = TableSpec(
    name=RUNS,
    body=_RUN_COLUMNS
    + """,
    INDEX idx_run_id RunId TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_conversation ConversationId TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_user UserId TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1,
    """
    + ",\n".join(f"INDEX {name} {spec}" for name, spec in RUNS_ENDED_INDEX.items()),
    engine="ReplacingMergeTree",
    engine_args="Version, IsDeleted",
    partition_by="(toDate(StartedAt), TtlDays)",
    order_by="(Tenant, StartedAt, RunId)",
    ttl=RUN_EXPIRES,
    settings=_DROP_PARTS,
    sharding_key="cityHash64(Tenant, RunId)",
)

# The runs again, sorted by run id: what finds one run (its logs, its replay) with one read of a
# few granules. The runs table is sorted by start time, so a lookup by id there checks every
# daily partition. Filled from the runs table by a materialized view, with the same keys and
# tombstones. Monthly partitions keep the parts few; so expired rows go by row TTL at merges
# (reads skip them before that) instead of as whole parts.
RUNS_BY_ID_TABLE = TableSpec(
    name=RUNS_BY_ID,
    body=_RUN_COLUMNS,
    engine="ReplacingMergeTree",
    engine_args="Version, IsDeleted",
    partition_by="(toYYYYMM(StartedAt), TtlDays)",
    order_by="(Tenant, RunId, StartedAt)",
    ttl=RUN_EXPIRES,
    # Small granules and compact parts (all columns in one file): a lookup reads one granule
    # of every column, and in a wide part each column is a file of its own to open and seek.
    settings={"index_granularity": 1024, "min_bytes_for_wide_part": 1 << 40, "min_rows_for_wide_part": 1 << 40},
    sharding_key=RUNS_TABLE.sharding_key,
)

RUNS_BY_ID_VIEW = ViewSpec(name=RUNS_BY_ID_MV, source=RUNS, target=RUNS_BY_ID, select="SELECT * FROM {source}")

# Ordered items of runs and conversations: the unit of replay. Deterministic from the spans, so
# a re-delivered span yields the same (TraceId, SpanId, Seq) and collapses.
EVENTS_TABLE = TableSpec(
    name=EVENTS,
    body=f"""
    Tenant LowCardinality(String) CODEC(ZSTD(1)),
    RunId String CODEC(ZSTD(1)),
    ConversationId String CODEC(ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    Seq UInt32 CODEC(ZSTD(1)),
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    Kind LowCardinality(String) CODEC(ZSTD(1)),
    Role LowCardinality(String) CODEC(ZSTD(1)),
    Name String CODEC(ZSTD(1)),
    Content String CODEC(ZSTD(3)) TTL {_PAYLOAD_TTL},
    ToolCallId String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    TtlDays UInt16 CODEC(ZSTD(1)),
    PayloadTtlDays UInt16 CODEC(ZSTD(1)),
    IngestedAt DateTime64(3) DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_conversation ConversationId TYPE bloom_filter(0.01) GRANULARITY 1
    """,
    engine="ReplacingMergeTree",
    partition_by=_DAY_PARTITION,
    order_by="(Tenant, RunId, Timestamp, TraceId, SpanId, Seq)",
    ttl=_ROW_TTL,
    settings=_DROP_PARTS,
    sharding_key="cityHash64(Tenant, RunId)",
)

# Logs with the Collector exporter's otel_logs column names. OTLP logs carry no id, so the
# writer derives LogId from the record's content for deduplication.
LOGS_TABLE = TableSpec(
    name=LOGS,
    body="""
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Tenant LowCardinality(String) CODEC(ZSTD(1)),
    RunId String CODEC(ZSTD(1)),
    LogId String CODEC(ZSTD(1)),
    TtlDays UInt16 CODEC(ZSTD(1)),
    IngestedAt DateTime64(3) DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_run_id RunId TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_body Body TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
    """,
    engine="ReplacingMergeTree",
    partition_by="(toDate(TimestampTime), TtlDays)",
    primary_key="(Tenant, ServiceName, TimestampTime)",
    order_by="(Tenant, ServiceName, TimestampTime, Timestamp, LogId)",
    ttl="TimestampTime + toIntervalDay(TtlDays)",
    settings=_DROP_PARTS,
    sharding_key="cityHash64(Tenant, TraceId)",
)

# Daily statistics per agent, kept in slices of one minute of run start: each refresh
# recomputes from the runs table only the minutes that changed (a new Version replaces the old
# row), so re-delivered spans never count twice and a refresh costs the runs of those minutes,
# not of the whole day. A day's figures are the sums (and merged t-digests) of its minutes.
AGENT_DAILY_TABLE = TableSpec(
    name=AGENT_DAILY,
    body="""
    Tenant LowCardinality(String),
    Day Date,
    AgentName LowCardinality(String),
    Minute DateTime,
    Runs UInt64,
    Completed UInt64,
    Failed UInt64,
    Cancelled UInt64,
    Running UInt64,
    Incomplete UInt64,
    Nodes UInt64,
    LlmCalls UInt64,
    ToolCalls UInt64,
    InputTokens UInt64,
    OutputTokens UInt64,
    CostUsd Float64,
    DurationSumNs UInt64,
    DurationQuantiles AggregateFunction(quantilesTDigest(0.5, 0.95), UInt64),
    TtlDays UInt16,
    Version UInt64
    """,
    engine="ReplacingMergeTree",
    engine_args="Version",
    partition_by="(toYYYYMM(Day), TtlDays)",
    order_by="(Tenant, Day, AgentName, Minute)",
    ttl="Day + toIntervalDay(TtlDays)",
    settings=_DROP_PARTS,
    sharding_key="cityHash64(Tenant, AgentName)",
)

# Per-tenant retention settings; no TTL (configuration, not data).
TENANTS_TABLE = TableSpec(
    name=TENANTS,
    body="""
    Tenant String,
    RetentionDays UInt16,
    PayloadRetentionDays UInt16,
    UpdatedAt DateTime64(3) DEFAULT now64(3)
    """,
    engine="ReplacingMergeTree",
    engine_args="UpdatedAt",
    order_by="Tenant",
    sharding_key="cityHash64(Tenant)",
)

MIGRATIONS_TABLE = TableSpec(
    name=MIGRATIONS,
    body="""
    Version UInt32,
    Description String,
    AppliedAt DateTime64(3) DEFAULT now64(3)
    """,
    engine="ReplacingMergeTree",
    order_by="Version",
)

DATA_TABLES = (
    SPANS_TABLE,
    TRACE_ID_TS_TABLE,
    RUNS_TABLE,
    RUNS_BY_ID_TABLE,
    EVENTS_TABLE,
    LOGS_TABLE,
    AGENT_DAILY_TABLE,
    TENANTS_TABLE,
)

# Defaults for rows written without tracehouse's receiver: the OpenTelemetry Collector's
# ClickHouse exporter inserts only its own columns. With these, such rows get the default
# tenant and retention (instead of a retention of 0 days, which the engine drops on insert),
# the run id tracehouse's instrumentation stamps (else the trace id), and a status; the other
# canonical columns stay empty (see collector-config/to-clickhouse.yaml for what that costs).
_RUN_ID_ATTRIBUTE = f"SpanAttributes['{semconv.TRACEHOUSE_RUN_ID}']"
COLLECTOR_DEFAULTS: dict[str, dict[str, str]] = {
    SPANS: {
        "Tenant": f"'{DEFAULT_TENANT}'",
        "RunId": f"if({_RUN_ID_ATTRIBUTE} != '', {_RUN_ID_ATTRIBUTE}, TraceId)",
        "RunRoot": "ParentSpanId = ''",
        "Status": "if(StatusCode = 'Error', 'failed', 'completed')",
        "TtlDays": str(DEFAULT_TTL_DAYS),
        "PayloadTtlDays": "TtlDays",
    },
    LOGS: {
        "Tenant": f"'{DEFAULT_TENANT}'",
        "RunId": f"LogAttributes['{semconv.TRACEHOUSE_RUN_ID}']",
        "LogId": "lower(hex(cityHash64(Timestamp, TraceId, SpanId, ServiceName, SeverityNumber, Body, LogAttributes)))",
        "TtlDays": str(DEFAULT_TTL_DAYS),
    },
}

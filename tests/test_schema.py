"""The schema as the real engine reports it: keys, partitions, TTL, codecs, indexes, versions."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from tracehouse import semconv
from tracehouse.model import DEFAULT_TENANT, DEFAULT_TTL_DAYS
from tracehouse.store import migrations, schema

pytestmark = pytest.mark.both_stores  # and against a ClickHouse HTTP endpoint (conftest)

# The OpenTelemetry Collector ClickHouse exporter's otel_traces and otel_logs columns, with the
# types Grafana's ClickHouse datasource expects.
COLLECTOR_TRACES = {
    "Timestamp": "DateTime64(9)", "TraceId": "String", "SpanId": "String", "ParentSpanId": "String",
    "TraceState": "String", "SpanName": "LowCardinality(String)", "SpanKind": "LowCardinality(String)",
    "ServiceName": "LowCardinality(String)", "ResourceAttributes": "Map(LowCardinality(String), String)",
    "ScopeName": "String", "ScopeVersion": "String", "SpanAttributes": "Map(LowCardinality(String), String)",
    "Duration": "UInt64", "StatusCode": "LowCardinality(String)", "StatusMessage": "String",
    "Events.Timestamp": "Array(DateTime64(9))", "Events.Name": "Array(LowCardinality(String))",
    "Events.Attributes": "Array(Map(LowCardinality(String), String))", "Links.TraceId": "Array(String)",
    "Links.SpanId": "Array(String)", "Links.TraceState": "Array(String)",
    "Links.Attributes": "Array(Map(LowCardinality(String), String))",
}  # fmt: skip
COLLECTOR_LOGS = {
    "Timestamp": "DateTime64(9)", "TimestampTime": "DateTime", "TraceId": "String", "SpanId": "String",
    "TraceFlags": "UInt8", "SeverityText": "LowCardinality(String)", "SeverityNumber": "UInt8",
    "ServiceName": "LowCardinality(String)", "Body": "String", "ResourceSchemaUrl": "LowCardinality(String)",
    "ResourceAttributes": "Map(LowCardinality(String), String)", "ScopeSchemaUrl": "LowCardinality(String)",
    "ScopeName": "String", "ScopeVersion": "LowCardinality(String)",
    "ScopeAttributes": "Map(LowCardinality(String), String)", "LogAttributes": "Map(LowCardinality(String), String)",
}  # fmt: skip


def _tables(store) -> dict[str, dict]:
    rows = store.query(
        "SELECT name, engine, partition_key, sorting_key, engine_full, create_table_query "
        "FROM system.tables WHERE database = {db:String}",
        {"db": store.layout.database},
    )
    return {
        r[0]: dict(zip(("engine", "partition", "sorting", "engine_full", "create"), r[1:], strict=True)) for r in rows
    }


def _columns(store, table: str) -> dict[str, tuple[str, str]]:
    rows = store.query(
        "SELECT name, type, compression_codec FROM system.columns WHERE database = {db:String} AND table = {t:String}",
        {"db": store.layout.database, "t": table},
    )
    return {name: (type_, codec) for name, type_, codec in rows}


EXPECTED = {
    # table: (engine, partition key, sorting key, row TTL column)
    schema.SPANS: (
        "ReplacingMergeTree",
        "(toDate(Timestamp), TtlDays, PayloadTtlDays)",
        "Tenant, toStartOfMinute(Timestamp), RunId, TraceId, SpanId",
        "TtlDays",
    ),
    schema.RUNS: ("ReplacingMergeTree", "(toDate(StartedAt), TtlDays)", "Tenant, StartedAt, RunId", "TtlDays"),
    schema.EVENTS: (
        "ReplacingMergeTree",
        "(toDate(Timestamp), TtlDays, PayloadTtlDays)",
        "Tenant, RunId, Timestamp, TraceId, SpanId, Seq",
        "TtlDays",
    ),
    schema.LOGS: (
        "ReplacingMergeTree",
        "(toDate(TimestampTime), TtlDays)",
        "Tenant, ServiceName, TimestampTime, Timestamp, LogId",
        "TtlDays",
    ),
    schema.AGENT_DAILY: ("ReplacingMergeTree", "(toYYYYMM(Day), TtlDays)", "Tenant, Day, AgentName, Minute", "TtlDays"),
    schema.TRACE_ID_TS: ("ReplacingMergeTree", "(toDate(Start), TtlDays)", "TraceId, Start", "TtlDays"),
}  # fmt: skip
# Tables whose parts span many days: rows expire one by one at merges, not as whole parts.
ROW_TTL = {
    schema.RUNS_BY_ID: (
        "ReplacingMergeTree", "(toYYYYMM(StartedAt), TtlDays)", "Tenant, RunId, StartedAt", "TtlDays"
    ),
}  # fmt: skip


@pytest.mark.embedded_only("reads the DDL the engine reports, the same through HTTP")
@pytest.mark.parametrize("table", sorted(EXPECTED | ROW_TTL))
def test_tables_have_the_intended_partitioning_and_ttl(store, table):
    info = _tables(store)[table]
    engine, partition, sorting, ttl_column = (EXPECTED | ROW_TTL)[table]
    assert info["engine"] == engine
    assert info["partition"] == partition
    assert info["sorting"] == sorting
    # The row TTL reads the per-row retention column, and parts expire whole (or rows one by one).
    assert "TTL " in info["engine_full"] and f"toIntervalDay({ttl_column})" in info["engine_full"]
    assert ("ttl_only_drop_parts = 1" in info["engine_full"]) == (table in EXPECTED)
    # Insert deduplication tokens work on these non-replicated tables.
    assert "non_replicated_deduplication_window = 1000" in info["engine_full"]


@pytest.mark.embedded_only("reads the DDL the engine reports, the same through HTTP")
def test_every_partition_key_holds_the_columns_its_ttl_reads(store):
    # A part can only expire whole if all its rows expire at once: the day and the retention
    # columns of the TTL expression must all be in the partition key.
    for table, (_, partition, _, ttl_column) in EXPECTED.items():
        assert ttl_column in partition, table
    assert "PayloadTtlDays" in EXPECTED[schema.SPANS][1] and "PayloadTtlDays" in EXPECTED[schema.EVENTS][1]


@pytest.mark.embedded_only("reads the DDL the engine reports, the same through HTTP")
def test_payload_columns_expire_on_their_own_ttl_and_are_zstd_compressed(store):
    tables = _tables(store)
    checked = set()
    for table, columns in ((schema.SPANS, ("Input", "Output", "PayloadAttributes", "Events.Attributes")),
                           (schema.EVENTS, ("Content",))):  # fmt: skip
        create = tables[table]["create"]
        cols = _columns(store, table)
        for column in columns:
            # The column's own definition (up to the next quoted name) carries the payload TTL.
            pattern = rf"`{re.escape(column)}` [^`]*TTL toDateTime\(Timestamp\) \+ toIntervalDay\(PayloadTtlDays\)"
            assert re.search(pattern, create), (table, column)
            assert cols[column][1] == "CODEC(ZSTD(3))", (table, column)
            checked.add(column)
        # Summary columns do not expire early.
        assert not re.search(r"`(TraceId|SpanName|Tenant|RunId|Kind)` [^`]*TTL", create)
    assert checked == schema.PAYLOAD_COLUMNS


@pytest.mark.embedded_only("reads the DDL the engine reports, the same through HTTP")
def test_spans_and_logs_keep_the_collector_column_names_and_types(store):
    spans = _columns(store, schema.SPANS)
    for name, type_ in COLLECTOR_TRACES.items():
        assert spans[name][0] == type_, name
    logs = _columns(store, schema.LOGS)
    for name, type_ in COLLECTOR_LOGS.items():
        assert logs[name][0] == type_, name
    lookup = _columns(store, schema.TRACE_ID_TS)
    assert {n: t for n, (t, _) in lookup.items() if n != "TtlDays"} == {
        "TraceId": "String",
        "Start": "DateTime",
        "End": "DateTime",
    }


@pytest.mark.embedded_only("reads the DDL the engine reports, the same through HTTP")
def test_lookups_have_their_skip_indexes(store):
    rows = store.query(
        "SELECT table, name, type FROM system.data_skipping_indices WHERE database = {db:String}",
        {"db": store.layout.database},
    )
    indexes = {(table, name): type_ for table, name, type_ in rows}
    assert indexes[(schema.SPANS, "idx_trace_id")] == "bloom_filter"
    assert indexes[(schema.SPANS, "idx_span_attr_key")] == "bloom_filter"
    assert indexes[(schema.RUNS, "idx_conversation")] == "bloom_filter"
    assert indexes[(schema.RUNS, "idx_run_id")] == "bloom_filter"
    assert indexes[(schema.SPANS, "idx_run_id")] == "bloom_filter"
    assert indexes[(schema.RUNS, "idx_user")] == "bloom_filter"
    assert indexes[(schema.LOGS, "idx_trace_id")] == "bloom_filter"
    assert indexes[(schema.TRACE_ID_TS, "idx_trace_id")] == "bloom_filter"
    assert indexes[(schema.RUNS, "idx_ended")] == "minmax"  # the idle sweep's window


def test_the_trace_id_lookup_is_filled_by_its_materialized_view(store):
    from tracehouse.demo import sample_run

    sample = sample_run(3)
    store.write(sample.nodes, sample.events)
    trace_id = sample.nodes[0].trace_id
    rows = store.query(
        f"SELECT min(Start), max(End) FROM {store.table(schema.TRACE_ID_TS)} WHERE TraceId = {{t:String}}",
        {"t": trace_id},
    )
    start = min(n.started_at for n in sample.nodes).replace(microsecond=0, tzinfo=None)
    assert rows[0][0] == start


def test_the_runs_by_id_follow_the_runs_table(store):
    from tracehouse.demo import sample_run

    sample = sample_run(4)
    store.write(sample.nodes, sample.events)
    columns = "RunId, StartedAt, NodeCount, CostUsd, Version, IsDeleted"

    def rows(table):
        return store.query(f"SELECT {columns} FROM {store.table(table)} ORDER BY RunId, StartedAt, Version")

    assert len(rows(schema.RUNS)) >= 2 and rows(schema.RUNS_BY_ID) == rows(schema.RUNS)


def test_a_store_of_an_earlier_version_gets_its_runs_copied(store):
    from tracehouse.demo import sample_run

    for seed in (5, 6):
        sample = sample_run(seed)
        store.write(sample.nodes, sample.events)
    # The store as schema version 2 left it: no runs-by-id table, its runs only in the runs table.
    store.client.command(f"DROP VIEW {store.table(schema.RUNS_BY_ID_MV)} SYNC")
    store.client.command(f"DROP TABLE {store.table(schema.RUNS_BY_ID)} SYNC")
    store.client.command(f"DELETE FROM {store.table(schema.MIGRATIONS)} WHERE Version = 3")
    assert migrations.migrate(store.client, store.layout) == [3]
    count = "SELECT uniqExact(RunId, StartedAt, Version) FROM {t} WHERE Tenant = 'default'"
    assert (
        store.query(count.format(t=store.table(schema.RUNS_BY_ID)))[0][0]
        == store.query(count.format(t=store.table(schema.RUNS)))[0][0]
        > 0
    )


def test_a_store_of_an_earlier_version_gets_its_daily_rollup_rebuilt_in_minutes(store):
    from tracehouse.demo import sample_runs

    for sample in sample_runs(6, seed=8, days=2):
        store.write(sample.nodes, sample.events)
    daily = store.table(schema.AGENT_DAILY)
    totals = f"SELECT Day, AgentName, sum(Runs), sum(InputTokens) FROM {daily} FINAL GROUP BY Day, AgentName ORDER BY Day, AgentName"  # noqa: E501
    expected = store.query(totals)
    assert sum(runs for _, _, runs, _ in expected) == 12
    # The store as schema version 3 left it: one row per tenant, day and agent, no minutes.
    store.client.command(f"DROP TABLE {daily} SYNC")
    old_shape = store.layout.create_table(schema.AGENT_DAILY_TABLE)[0]
    old_shape = old_shape.replace("    Minute DateTime,\n", "").replace(", Minute)", ")")
    assert "Minute" not in old_shape
    store.client.command(old_shape)
    store.client.command(f"DELETE FROM {store.table(schema.MIGRATIONS)} WHERE Version = 4")
    assert migrations.migrate(store.client, store.layout) == [4]
    assert _tables(store)[schema.AGENT_DAILY]["sorting"] == "Tenant, Day, AgentName, Minute"
    assert store.query(totals) == expected


def test_a_store_of_version_4_counts_incomplete_runs_once_upgraded(store):
    from tracehouse.demo import sample_run

    crashed = sample_run(10)  # started five minutes ago; its process died before the root ended
    store.write([n for n in crashed.nodes if n.run_id == crashed.run_id and not n.run_root])
    daily, runs = store.table(schema.AGENT_DAILY), store.table(schema.RUNS)
    # The store as schema version 4 left it: no incomplete count in the rollup, no index on EndedAt.
    store.client.command(f"ALTER TABLE {daily} DROP COLUMN Incomplete")
    store.client.command(f"ALTER TABLE {runs} DROP INDEX idx_ended")
    store.client.command(f"DELETE FROM {store.table(schema.MIGRATIONS)} WHERE Version = 5")
    assert migrations.migrate(store.client, store.layout) == [5]
    columns = list(_columns(store, schema.AGENT_DAILY))
    assert columns.index("Incomplete") == columns.index("Running") + 1
    assert store.query(f"SELECT sum(Running), sum(Incomplete) FROM {daily} FINAL") == [(1, 0)]
    store.run_idle_timeout = 60  # the run stored before the upgrade is swept like any other
    assert [r.run_id for r in store.mark_idle_runs()] == [crashed.run_id]
    assert store.query(f"SELECT sum(Running), sum(Incomplete) FROM {daily} FINAL") == [(0, 1)]


def test_migrations_are_recorded_and_idempotent(store):
    assert store.schema_version() == migrations.LATEST_VERSION
    assert migrations.migrate(store.client, store.layout) == []
    assert migrations.migrate(store.client, store.layout) == []
    table = store.table(schema.MIGRATIONS)
    rows = store.query(f"SELECT Version, count() FROM {table} GROUP BY Version ORDER BY Version")
    assert rows == [(m.version, 1) for m in migrations.MIGRATIONS]


def test_a_half_applied_migration_is_completed_at_the_next_start(store):
    # Simulate a crash after some statements: drop a table and forget the version.
    store.client.command(f"DROP TABLE {store.table(schema.EVENTS)} SYNC")
    store.client.command(f"TRUNCATE TABLE {store.table(schema.MIGRATIONS)}")
    assert migrations.migrate(store.client, store.layout) == [m.version for m in migrations.MIGRATIONS]
    assert schema.EVENTS in _tables(store)


# The column list the OpenTelemetry Collector's ClickHouse exporter inserts (its traces_insert.sql).
COLLECTOR_SPAN_COLUMNS = [
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind", "ServiceName",
    "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration", "StatusCode", "StatusMessage",
    "Events.Timestamp", "Events.Name", "Events.Attributes", "Links.TraceId", "Links.SpanId", "Links.TraceState",
    "Links.Attributes",
]  # fmt: skip


def test_spans_the_collector_exporter_writes_are_kept_with_defaults(store):
    # Without the defaults such a row would get a retention of 0 days and be dropped on insert.
    now = datetime.now(UTC)
    run = "0193a1b2-run"
    rows = [
        [now, "a" * 32, "1" * 16, "", "", "agent", "Internal", "svc", {}, "s", "1", {semconv.TRACEHOUSE_RUN_ID: run},
         5_000_000, "Error", "boom", [], [], [], [], [], [], []],
        [now, "b" * 32, "2" * 16, "", "", "plain", "Internal", "svc", {}, "s", "1", {}, 1_000, "Ok", "", [], [], [], [],
         [], [], []],
    ]  # fmt: skip
    store.client.insert(store.table(schema.SPANS), rows, column_names=COLLECTOR_SPAN_COLUMNS)
    got = store.query(
        f"SELECT TraceId, Tenant, RunId, RunRoot, Status, TtlDays, PayloadTtlDays FROM {store.table(schema.SPANS)} "
        "ORDER BY TraceId"
    )
    assert got == [
        ("a" * 32, DEFAULT_TENANT, run, True, "failed", DEFAULT_TTL_DAYS, DEFAULT_TTL_DAYS),
        ("b" * 32, DEFAULT_TENANT, "b" * 32, True, "completed", DEFAULT_TTL_DAYS, DEFAULT_TTL_DAYS),
    ]
    # The trace id lookup the trace view reads is filled too.
    assert store.query(f"SELECT count() FROM {store.table(schema.TRACE_ID_TS)}")[0][0] == 2
    # Logs: the exporter's columns only; the row is kept, with an id for deduplication.
    log_columns = ["Timestamp", "TraceId", "SpanId", "TraceFlags", "SeverityText", "SeverityNumber", "ServiceName",
                   "Body", "ResourceSchemaUrl", "ResourceAttributes", "ScopeSchemaUrl", "ScopeName", "ScopeVersion",
                   "ScopeAttributes", "LogAttributes"]  # fmt: skip
    record = [now, "a" * 32, "1" * 16, 1, "INFO", 9, "svc", "hello", "", {}, "", "s", "1", {},
              {semconv.TRACEHOUSE_RUN_ID: run}]  # fmt: skip
    store.client.insert(store.table(schema.LOGS), [record], column_names=log_columns)
    ((tenant, run_id, log_id, ttl),) = store.query(
        f"SELECT Tenant, RunId, LogId, TtlDays FROM {store.table(schema.LOGS)}"
    )
    assert (tenant, run_id, ttl) == (DEFAULT_TENANT, run, DEFAULT_TTL_DAYS) and len(log_id) == 16


def test_a_store_from_a_newer_tracehouse_is_refused(store):
    store.client.insert(store.table(schema.MIGRATIONS), [[99, "future"]], column_names=["Version", "Description"])
    with pytest.raises(RuntimeError, match="newer tracehouse"):
        migrations.migrate(store.client, store.layout)

"""Retention built into the tables: per-row TTL, payloads that expire sooner, whole parts dropped.

A row already past its retention is dropped by the engine as it is inserted, so these tests
write with TTL merges stopped (as if the rows had been stored in time and the days had passed
since), then let the engine apply TTL and look at what is left.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracehouse.demo import sample_run
from tracehouse.model import LogRecord
from tracehouse.store import queries, schema

TTL_TABLES = (
    schema.SPANS,
    schema.RUNS,
    schema.RUNS_BY_ID,
    schema.EVENTS,
    schema.LOGS,
    schema.AGENT_DAILY,
    schema.TRACE_ID_TS,
)

pytestmark = pytest.mark.both_stores  # and against a ClickHouse HTTP endpoint (conftest)


@pytest.fixture
def paused_ttl(store):
    for table in TTL_TABLES:
        store.client.command(f"SYSTEM STOP TTL MERGES {store.table(table)}")
    yield store
    for table in TTL_TABLES:
        store.client.command(f"SYSTEM START TTL MERGES {store.table(table)}")


def _apply_ttl(store) -> None:
    for table in TTL_TABLES:
        store.client.command(f"SYSTEM START TTL MERGES {store.table(table)}")
        store.client.command(f"ALTER TABLE {store.table(table)} MATERIALIZE TTL", settings={"mutations_sync": 2})


def _count(store, table: str, where: str = "1", **params) -> int:
    return store.query(f"SELECT count() FROM {store.table(table)} FINAL WHERE {where}", params)[0][0]


def _write(store, days_ago: float, ttl_days: int, seed: int, payload_ttl_days: int | None = None):
    sample = sample_run(seed, started_at=datetime.now(UTC) - timedelta(days=days_ago), ttl_days=ttl_days)
    if payload_ttl_days is not None:
        for item in (*sample.nodes, *sample.events):
            item.payload_ttl_days = payload_ttl_days
    log = LogRecord(timestamp=sample.nodes[0].started_at, trace_id=sample.nodes[0].trace_id, body=f"log {seed}",
                    run_id=sample.run_id, ttl_days=ttl_days)  # fmt: skip
    store.write(sample.nodes, sample.events, [log])
    return sample


def test_rows_past_their_retention_go_and_fresh_rows_stay(paused_ttl):
    store = paused_ttl
    expired = _write(store, days_ago=40, ttl_days=30, seed=1)  # default retention, passed
    short = _write(store, days_ago=10, ttl_days=7, seed=2)  # a 7-day tenant, passed
    kept_long = _write(store, days_ago=10, ttl_days=30, seed=3)  # same age, 30 days: stays
    fresh = _write(store, days_ago=0.01, ttl_days=30, seed=4)
    gone, kept = (expired, short), (kept_long, fresh)

    def present(sample) -> dict[str, int]:
        run, trace = sample.run_id, sample.nodes[0].trace_id
        return {
            schema.SPANS: _count(store, schema.SPANS, "TraceId = {t:String}", t=trace),
            schema.RUNS: _count(store, schema.RUNS, "RunId = {r:String}", r=run),
            schema.RUNS_BY_ID: _count(store, schema.RUNS_BY_ID, "RunId = {r:String}", r=run),
            schema.EVENTS: _count(store, schema.EVENTS, "TraceId = {t:String}", t=trace),
            schema.LOGS: _count(store, schema.LOGS, "TraceId = {t:String}", t=trace),
            schema.TRACE_ID_TS: _count(store, schema.TRACE_ID_TS, "TraceId = {t:String}", t=trace),
        }

    for sample in (*gone, *kept):  # all stored while TTL merges were paused
        assert all(present(sample).values()), present(sample)
    # Reads of one run see no expired run even before merges take its rows.
    for sample in gone:
        assert queries.run_summary(store, "default", sample.run_id) is None
    for sample in kept:
        assert queries.run_summary(store, "default", sample.run_id).run_id == sample.run_id
    days_with_runs = _count(store, schema.AGENT_DAILY, "Runs > 0")

    _apply_ttl(store)

    for sample in gone:
        assert not any(present(sample).values()), present(sample)
    for sample in kept:
        counts = present(sample)
        assert counts[schema.SPANS] == len(sample.nodes) and counts[schema.EVENTS] == len(sample.events)
        assert counts[schema.RUNS] == counts[schema.RUNS_BY_ID] == 1 and counts[schema.LOGS] == 1
    assert _count(store, schema.AGENT_DAILY, "Runs > 0") < days_with_runs


def test_expired_parts_are_dropped_whole(paused_ttl):
    store = paused_ttl
    _write(store, days_ago=40, ttl_days=30, seed=5)
    old_day = (datetime.now(UTC) - timedelta(days=40)).date()
    _apply_ttl(store)
    # The expired partition holds no rows at all: the part was dropped, not rewritten row by row.
    rows = store.query(
        "SELECT sum(rows) FROM system.parts WHERE database = {db:String} AND table = {t:String} AND active "
        "AND partition LIKE {p:String}",
        {"db": store.layout.database, "t": schema.SPANS, "p": f"('{old_day}',%"},
    )
    assert rows[0][0] in (0, None)


def test_payloads_expire_before_the_summary(paused_ttl):
    store = paused_ttl
    sample = _write(store, days_ago=10, ttl_days=30, seed=6, payload_ttl_days=7)
    control = _write(store, days_ago=10, ttl_days=30, seed=7, payload_ttl_days=30)
    trace, control_trace = sample.nodes[0].trace_id, control.nodes[0].trace_id
    with_payload = "Input != '' OR Output != '' OR length(PayloadAttributes) > 0"
    assert _count(store, schema.SPANS, f"TraceId = {{t:String}} AND ({with_payload})", t=trace) > 0

    _apply_ttl(store)

    # The spans, their tokens and the run summary stay...
    assert _count(store, schema.SPANS, "TraceId = {t:String}", t=trace) == len(sample.nodes)
    tokens = store.query(f"SELECT sum(InputTokens) FROM {store.table(schema.SPANS)} FINAL WHERE TraceId = {{t:String}}",
                         {"t": trace})[0][0]  # fmt: skip
    assert tokens == sum(n.usage.input_tokens for n in sample.nodes)
    assert _count(store, schema.RUNS, "RunId = {r:String}", r=sample.run_id) == 1
    # ...but every payload is gone: inputs, outputs, payload attributes, span event attributes, event content.
    assert _count(store, schema.SPANS, f"TraceId = {{t:String}} AND ({with_payload})", t=trace) == 0
    assert _count(store, schema.SPANS, "TraceId = {t:String} AND arrayExists(m -> length(m) > 0, `Events.Attributes`)",
                  t=trace) == 0  # fmt: skip
    assert _count(store, schema.EVENTS, "TraceId = {t:String} AND Content != ''", t=trace) == 0
    assert _count(store, schema.EVENTS, "TraceId = {t:String}", t=trace) == len(sample.events)
    # A row of the same age with a 30-day payload retention keeps its payloads.
    assert _count(store, schema.SPANS, f"TraceId = {{t:String}} AND ({with_payload})", t=control_trace) > 0
    assert _count(store, schema.EVENTS, "TraceId = {t:String} AND Content != ''", t=control_trace) == len(
        control.events
    )


def test_payload_retention_never_outlives_row_retention(store):
    sample = sample_run(8, ttl_days=7)
    for node in sample.nodes:
        node.payload_ttl_days = 90
    store.write(sample.nodes, sample.events)
    rows = store.query(f"SELECT DISTINCT TtlDays, PayloadTtlDays FROM {store.table(schema.SPANS)}")
    assert rows == [(7, 7)]

"""Reads: the run list never touches payload columns; filters, order, paging, tenants; round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from plan_helpers import columns_read

from tracehouse.demo import sample_run
from tracehouse.model import Status
from tracehouse.store import queries, schema

pytestmark = pytest.mark.both_stores  # and against a ClickHouse HTTP endpoint (conftest)


def test_listing_runs_reads_no_payload_column(store):
    sample = sample_run(21)
    store.write(sample.nodes, sample.events)
    since = datetime.now(UTC) - timedelta(days=1)
    sql = queries.list_runs_sql(store.table(schema.RUNS), agent=True, status=True, since=True, top_level=True)
    params = {
        "tenant": "default",
        "agent": "trip-planner",
        "status": "completed",
        "since": since,
        "limit": 100,
        "offset": 0,
    }
    read = columns_read(store, sql, params)
    assert "RunId" in read and "StartedAt" in read
    assert not read & schema.PAYLOAD_COLUMNS, read & schema.PAYLOAD_COLUMNS
    # The runs table itself has no payload column to read by mistake.
    runs_columns = {
        name
        for (name,) in store.query(
            "SELECT name FROM system.columns WHERE database = {d:String} AND table = 'runs'",
            {"d": store.layout.database},
        )
    }
    assert not runs_columns & schema.PAYLOAD_COLUMNS


@pytest.mark.embedded_only("checks the plan check itself")
def test_the_plan_check_sees_a_payload_read(store):
    # Control: the same check flags a query that does read payloads, so the test above can fail.
    sql = f"SELECT SpanId, Input FROM {store.table(schema.SPANS)} WHERE Tenant = {{tenant:String}} LIMIT 10"
    assert "Input" in columns_read(store, sql, {"tenant": "default"})


@pytest.fixture
def filled(store):
    now = datetime.now(UTC)
    samples = {
        "a": sample_run(31, started_at=now - timedelta(hours=1), agent="trip-planner"),
        "b": sample_run(32, started_at=now - timedelta(hours=2), agent="support-bot", fail=True),
        "c": sample_run(33, started_at=now - timedelta(days=3), agent="trip-planner"),
        "other": sample_run(34, started_at=now - timedelta(minutes=5), tenant="acme"),
    }
    for sample in samples.values():
        store.write(sample.nodes, sample.events)
    return store, samples


def test_history_is_newest_first_and_filters(filled):
    store, s = filled
    top = queries.list_runs(store, "default", top_level=True)
    assert [r.run_id for r in top] == [s["a"].run_id, s["b"].run_id, s["c"].run_id]
    assert len(queries.list_runs(store, "default")) == 6  # with the sub-agent runs
    assert [r.run_id for r in queries.list_runs(store, "default", agent="support-bot")] == [s["b"].run_id]
    failed = queries.list_runs(store, "default", status=Status.FAILED, top_level=True)
    assert [r.run_id for r in failed] == [s["b"].run_id]
    assert failed[0].error_message.startswith("RuntimeError")
    recent = queries.list_runs(store, "default", top_level=True, since=datetime.now(UTC) - timedelta(days=1))
    assert {r.run_id for r in recent} == {s["a"].run_id, s["b"].run_id}
    older = queries.list_runs(store, "default", top_level=True, until=datetime.now(UTC) - timedelta(days=1))
    assert [r.run_id for r in older] == [s["c"].run_id]


def test_history_pages_without_gaps_or_repeats(filled):
    store, _ = filled
    everything = [r.run_id for r in queries.list_runs(store, "default")]
    paged = []
    for offset in range(0, 8, 2):
        paged += [r.run_id for r in queries.list_runs(store, "default", limit=2, offset=offset)]
    assert paged == everything
    assert queries.list_runs(store, "default", limit=2, offset=100) == []


def test_no_read_crosses_tenants(filled):
    store, s = filled
    assert [r.run_id for r in queries.list_runs(store, "acme", top_level=True)] == [s["other"].run_id]
    assert queries.run_nodes(store, "acme", s["a"].run_id) == []
    assert queries.trace_nodes(store, "default", s["other"].nodes[0].trace_id) == []


def test_nodes_read_back_exactly_as_written(filled):
    store, s = filled
    sample = s["b"]
    written = sorted((n for n in sample.nodes if n.run_id == sample.run_id), key=lambda n: (n.started_at, n.span_id))
    assert queries.run_nodes(store, "default", sample.run_id) == written
    trace = sorted(sample.nodes, key=lambda n: (n.started_at, n.span_id))
    assert queries.trace_nodes(store, "default", sample.nodes[0].trace_id) == trace


def test_run_summary_reads_back_as_a_model(filled):
    store, s = filled
    run = next(r for r in queries.list_runs(store, "default") if r.run_id == s["a"].run_id)
    root = next(n for n in s["a"].nodes if n.run_root and n.run_id == s["a"].run_id)
    assert run.agent_name == "trip-planner" and run.status is Status.COMPLETED
    assert run.started_at == root.started_at and run.duration_ns == root.duration_ns
    assert run.input_preview == root.input and run.output_preview == root.output
    assert run.metadata == {"plan": "standard"}
    assert run.trace_id == root.trace_id and run.root_span_id == root.span_id
    assert run.user_id == root.user_id and run.conversation_id == root.conversation_id

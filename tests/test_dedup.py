"""Idempotent writes and run totals: a span delivered twice, late or out of order counts once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracehouse.demo import sample_run
from tracehouse.model import NodeType, Status, Usage
from tracehouse.store import queries, schema

pytestmark = pytest.mark.both_stores  # and against a ClickHouse HTTP endpoint (conftest)


def _run_row(store, run_id: str) -> dict:
    cols = ("Status", "NodeCount", "FailedNodes", "LlmCalls", "ToolCalls", "InputTokens", "OutputTokens",
            "CacheReadTokens", "CostUsd", "StartedAt", "DurationNs", "AgentName", "ParentRunId")  # fmt: skip
    rows = store.query(f"SELECT {', '.join(cols)} FROM {store.table(schema.RUNS)} FINAL WHERE RunId = {{r:String}}",
                       {"r": run_id})  # fmt: skip
    assert len(rows) == 1, rows
    return dict(zip(cols, rows[0], strict=True))


def _expected(nodes, run_id: str) -> dict:
    own = [n for n in nodes if n.run_id == run_id]
    llm = [n for n in own if n.type is NodeType.LLM]
    return {
        "NodeCount": len(own) - 1,
        "FailedNodes": sum(1 for n in own if n.status is Status.FAILED and not n.run_root),
        "LlmCalls": len(llm),
        "ToolCalls": sum(1 for n in own if n.type is NodeType.TOOL),
        "InputTokens": sum(n.usage.input_tokens for n in llm),
        "OutputTokens": sum(n.usage.output_tokens for n in llm),
        "CacheReadTokens": sum(n.usage.cache_read_tokens for n in llm),
    }


def _span_counts(store, trace_id: str) -> tuple[int, int]:
    """(rows a query sees with FINAL, distinct span ids)."""
    return store.query(
        f"SELECT count(), uniqExact(SpanId) FROM {store.table(schema.SPANS)} FINAL WHERE TraceId = {{t:String}}",
        {"t": trace_id},
    )[0]


def _assert_counted_once(store, sample) -> dict:
    """Every read sees each span and event of ``sample`` once; returns the run's row."""
    trace = sample.nodes[0].trace_id
    assert _span_counts(store, trace) == (len(sample.nodes), len(sample.nodes))
    events = store.query(
        f"SELECT count() FROM {store.table(schema.EVENTS)} FINAL WHERE TraceId = {{t:String}}", {"t": trace}
    )
    assert events[0][0] == len(sample.events)
    row = _run_row(store, sample.run_id)
    for key, value in _expected(sample.nodes, sample.run_id).items():
        assert row[key] == value, key
    expected_cost = sum(n.cost_usd for n in sample.nodes if n.run_id == sample.run_id and n.type is NodeType.LLM)
    assert abs(row["CostUsd"] - expected_cost) < 1e-12
    runs = queries.list_runs(store, "default")
    assert sorted(r.run_id for r in runs) == sorted({n.run_id for n in sample.nodes})
    # The reads of one run or trace (no FINAL: one row per identity) see each span and event
    # once too, with the copies still in unmerged parts.
    run = queries.run_summary(store, "default", sample.run_id)
    nodes, final_output = queries.run_log_nodes(store, "default", run)
    expected_nodes = [
        n.span_id
        for n in sample.nodes
        if (n.run_id == sample.run_id and not n.run_root) or (n.run_root and n.parent_run_id == sample.run_id)
    ]
    assert sorted(n.span_id for n in nodes) == sorted(expected_nodes)
    assert final_output == next(n.output for n in sample.nodes if n.run_root and n.run_id == sample.run_id)
    own_events = [e for e in sample.events if e.run_id == sample.run_id]
    assert len(queries.run_events(store, "default", sample.run_id, run)) == len(own_events)
    assert len(queries.run_events(store, "default", sample.run_id)) == len(own_events)
    assert len(queries.trace_nodes(store, "default", trace)) == len(sample.nodes)
    daily = store.query(f"SELECT sum(Runs), sum(InputTokens) FROM {store.table(schema.AGENT_DAILY)} FINAL "
                        "WHERE AgentName = 'trip-planner'")  # fmt: skip
    assert daily == [(1, row["InputTokens"])]
    return row


def test_a_span_delivered_twice_counts_once_everywhere(store):
    sample = sample_run(11)
    store.write(sample.nodes, sample.events)
    first = _run_row(store, sample.run_id)
    store.write(sample.nodes, sample.events)  # a client retry, a spool replay: same spans again
    store.write(sample.nodes[:3], sample.events[:2])  # and a partial re-delivery
    assert _assert_counted_once(store, sample) == first


def test_copies_within_one_insert_are_stored_and_read_once(store):
    """Inserts keep duplicate keys of their own block (no collapsing pass at insert time: it
    cost more than half of a span insert); every read collapses them as it does across parts."""
    sample = sample_run(13)
    store.write(sample.nodes + sample.nodes[:4], sample.events + sample.events[:3])  # one block each
    physical = store.query(
        f"SELECT count() FROM {store.table(schema.SPANS)} WHERE TraceId = {{t:String}}", {"t": sample.nodes[0].trace_id}
    )[0][0]
    assert physical == len(sample.nodes) + 4  # the copies are in the part: the reads must collapse them
    _assert_counted_once(store, sample)


def test_insert_deduplication_tokens_drop_a_retried_block_physically(store):
    sample = sample_run(12)
    for _ in range(3):
        store.insert_spans(sample.nodes, dedup_token="spool-segment-7:offset-0")
    raw = store.query(f"SELECT count() FROM {store.table(schema.SPANS)}")[0][0]  # no FINAL: physical rows
    assert raw == len(sample.nodes)
    store.insert_spans(sample.nodes)  # no token: a second physical copy, collapsed on read
    assert store.query(f"SELECT count() FROM {store.table(schema.SPANS)}")[0][0] == 2 * len(sample.nodes)
    assert _span_counts(store, sample.nodes[0].trace_id)[0] == len(sample.nodes)


def test_spans_arriving_out_of_order_end_in_the_right_run(store):
    sample = sample_run(13)
    root = next(n for n in sample.nodes if n.run_root and n.run_id == sample.run_id)
    children = [n for n in sample.nodes if n is not root]
    store.write(children[::-1])  # children first, newest first, root last (as batch exporters send)
    early = _run_row(store, sample.run_id)
    assert early["Status"] == Status.RUNNING.value
    assert early["NodeCount"] == _expected(sample.nodes, sample.run_id)["NodeCount"]
    assert early["StartedAt"] > root.started_at.replace(tzinfo=None)  # the first child's start, for now
    store.write([root])
    row = _run_row(store, sample.run_id)
    assert row["Status"] == Status.COMPLETED.value
    assert row["AgentName"] == "trip-planner"
    assert row["StartedAt"] == root.started_at.replace(tzinfo=None)
    assert row["DurationNs"] == root.duration_ns
    for key, value in _expected(sample.nodes, sample.run_id).items():
        assert row[key] == value, key


def test_agent_spans_repeating_their_childrens_usage_are_not_summed_again(store):
    sample = sample_run(14)
    root = next(n for n in sample.nodes if n.run_root and n.run_id == sample.run_id)
    own_llm = _expected(sample.nodes, sample.run_id)["InputTokens"]
    root.usage = Usage(input_tokens=own_llm, output_tokens=1)  # an instrumentation that rolls usage up
    store.write(sample.nodes)
    assert _run_row(store, sample.run_id)["InputTokens"] == own_llm


def test_sub_agent_runs_link_to_their_parent_and_keep_their_own_totals(store):
    sample = sample_run(15)
    store.write(sample.nodes, sample.events)
    sub_ids = {n.run_id for n in sample.nodes} - {sample.run_id}
    assert len(sub_ids) == 1
    sub = _run_row(store, sub_ids.pop())
    assert sub["ParentRunId"] == sample.run_id and sub["AgentName"] == "budget-checker"
    parent = _run_row(store, sample.run_id)
    all_llm = sum(n.usage.input_tokens for n in sample.nodes if n.type is NodeType.LLM)
    assert parent["InputTokens"] + sub["InputTokens"] == all_llm


def test_a_run_whose_start_moves_across_midnight_is_not_listed_twice(store):
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    # The root starts 5 ms before midnight, its first child 10 ms after the root.
    sample = sample_run(16, started_at=midnight - timedelta(milliseconds=5))
    root = next(n for n in sample.nodes if n.run_root and n.run_id == sample.run_id)
    children = [n for n in sample.nodes if n.run_id == sample.run_id and n is not root]
    store.write(children)  # the run first appears on the day after
    assert _run_row(store, sample.run_id)["StartedAt"].date() == midnight.date()
    store.write([root])  # and moves to the day before when its root arrives
    assert _run_row(store, sample.run_id)["StartedAt"].date() == (midnight - timedelta(days=1)).date()
    assert len(queries.list_runs(store, "default")) == 1
    moved = queries.run_summary(store, "default", sample.run_id)  # the live row, not the old key's
    assert moved.started_at.date() == (midnight - timedelta(days=1)).date() and moved.agent_name == "trip-planner"
    # The superseded row got a tombstone under its own key: once merged, what is left of it in its
    # partition is the tombstone, which FINAL hides.
    store.client.command(f"OPTIMIZE TABLE {store.table(schema.RUNS)} FINAL")
    physical = store.query(
        f"SELECT toDate(StartedAt), IsDeleted FROM {store.table(schema.RUNS)} WHERE RunId = {{r:String}} ORDER BY 1",
        {"r": sample.run_id},
    )
    assert physical == [((midnight - timedelta(days=1)).date(), 0), (midnight.date(), 1)]
    # The day the run left is rewritten to zero (under the agent name known then: none, as only
    # the root span names the agent); the day it moved to counts it once.
    daily = {(day, agent): runs for day, agent, runs in store.query(
        f"SELECT Day, AgentName, sum(Runs) FROM {store.table(schema.AGENT_DAILY)} FINAL "
        "GROUP BY Day, AgentName")}  # fmt: skip
    assert daily == {((midnight - timedelta(days=1)).date(), "trip-planner"): 1, (midnight.date(), ""): 0}


@pytest.mark.embedded_only("long; its SQL is the refresh the other tests run through HTTP")
def test_daily_rollup_matches_the_runs_it_summarises(store):
    from tracehouse.demo import sample_runs

    samples = sample_runs(30, seed=3, days=3)
    for sample in samples:
        store.write(sample.nodes, sample.events)
    store.write(samples[0].nodes)  # one duplicate delivery for good measure
    by_runs = store.query(
        f"SELECT AgentName, count(), countIf(Status = 'failed'), sum(InputTokens), sum(CostUsd), "
        f"quantileExact(0.5)(DurationNs) FROM {store.table(schema.RUNS)} FINAL GROUP BY AgentName ORDER BY AgentName"
    )
    by_daily = store.query(
        f"SELECT AgentName, sum(Runs), sum(Failed), sum(InputTokens), sum(CostUsd), "
        f"quantilesTDigestMerge(0.5, 0.95)(DurationQuantiles)[1] FROM {store.table(schema.AGENT_DAILY)} FINAL "
        "GROUP BY AgentName ORDER BY AgentName"
    )
    assert len(by_runs) == len(by_daily) >= 2
    for r, d in zip(by_runs, by_daily, strict=True):
        assert r[:4] == d[:4]
        assert abs(r[4] - d[4]) < 1e-9
        assert abs(r[5] - d[5]) <= 0.2 * r[5]  # t-digest is approximate
    assert sum(r[1] for r in by_runs) == 60  # 30 runs, each with one sub-agent run


def test_a_refresh_recomputes_only_the_minutes_of_its_runs(store):
    """The daily rollup is kept per minute of run start: a batch of new runs rewrites the slices
    of their minutes and leaves the rest of the day alone (a refresh reads a few minutes of
    runs, not every run of the day)."""
    from tracehouse.demo import sample_run

    now = datetime.now(UTC).replace(second=30, microsecond=0)
    first, second = sample_run(21, started_at=now - timedelta(minutes=30)), sample_run(22, started_at=now)
    store.write(first.nodes, first.events)
    daily = store.table(schema.AGENT_DAILY)
    versions = f"SELECT Minute, AgentName, Version FROM {daily} FINAL WHERE Runs > 0 ORDER BY Minute, AgentName"
    earlier, later = (now - timedelta(minutes=30)).replace(second=0, tzinfo=None), now.replace(second=0, tzinfo=None)
    before = store.query(versions)
    assert [minute for minute, _, _ in before] == [earlier, earlier]  # the run and its sub-agent run
    store.write(second.nodes, second.events)
    after = store.query(versions)
    assert after[:2] == before  # the earlier minute was not recomputed
    assert [minute for minute, _, _ in after] == [earlier, earlier, later, later]
    assert store.query(f"SELECT sum(Runs) FROM {daily} FINAL")[0][0] == 4  # each run has a sub-agent run

"""Run refreshes stay bounded in time, without losing the spans of long-running runs; runs whose
root never arrives turn incomplete once quiet, until the root arrives."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tracehouse import semconv
from tracehouse.demo import sample_run, sample_runs
from tracehouse.model import Node, NodeType, Status, Usage
from tracehouse.store import queries, rollups, schema

pytestmark = pytest.mark.both_stores  # and against a ClickHouse HTTP endpoint (conftest)


def test_a_long_running_run_keeps_its_old_spans_when_new_ones_arrive(store):
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    sample = sample_run(41, started_at=three_days_ago)
    own = [n for n in sample.nodes if n.run_id == sample.run_id and not n.run_root]
    store.write(own)  # the run's first steps, three days ago
    late = Node(
        trace_id=own[0].trace_id, span_id="f" * 16, parent_span_id=own[0].parent_span_id, name="chat late-model",
        started_at=datetime.now(UTC), duration_ns=1_000, run_id=sample.run_id, type=NodeType.LLM,
        operation=semconv.OP_CHAT, usage=Usage(input_tokens=7, output_tokens=3),
    )  # fmt: skip
    store.write([late])  # a step today: the refresh must still see the spans of three days ago
    row = store.query(
        f"SELECT NodeCount, InputTokens, toDate(StartedAt) FROM {store.table(schema.RUNS)} FINAL "
        "WHERE RunId = {r:String}",
        {"r": sample.run_id},
    )
    expected_tokens = sum(n.usage.input_tokens for n in own if n.type is NodeType.LLM) + 7
    assert row == [(len(own) + 1, expected_tokens, three_days_ago.date())]


@pytest.mark.embedded_only("long; its SQL is the refresh the other tests run through HTTP")
def test_a_refresh_reads_only_the_partitions_its_runs_can_be_in(store):
    for sample in sample_runs(40, seed=5, days=20):  # history spread over twenty days
        store.write(sample.nodes)
    fresh = sample_run(42, started_at=datetime.now(UTC) - timedelta(seconds=30))
    store.insert_spans(fresh.nodes)
    since = min(n.started_at for n in fresh.nodes).replace(tzinfo=None)
    keys = sorted({(n.tenant, n.run_id) for n in fresh.nodes})
    store.client.command(rollups._CREATE_KEYS)
    rollups._load_keys(store.client, dict.fromkeys(keys, since))
    select = rollups._sql(rollups._REFRESH_RUNS, rollups._table_names(store.layout)).split("SELECT", 1)[1]
    plan = "\n".join(
        row[0]
        for row in store.query(
            "EXPLAIN indexes = 1 SELECT" + select,
            {"day": since.date(), "since": since, "meta_prefix": "x.", "idle_ns": 1_800_000_000_000},
        )
    )
    total = int(re.search(r"Parts: \d+/(\d+)", plan).group(1))  # parts before any index
    read = int(re.search(r"ReadFromMergeTree.*?Parts: (\d+) \| Granules", plan, re.S).group(1))
    assert total >= 15 and read <= 2, plan
    # and the refresh itself gives the right rows
    store.refresh_runs({key: min(n.started_at for n in fresh.nodes if (n.tenant, n.run_id) == key) for key in keys})
    counts = store.query(
        f"SELECT RunId, NodeCount FROM {store.table(schema.RUNS)} FINAL WHERE RunId IN {{r:Array(String)}}",
        {"r": [k[1] for k in keys]},
    )
    assert dict(counts) == {
        run_id: sum(1 for n in fresh.nodes if n.run_id == run_id and not n.run_root) for _, run_id in keys
    }


# --- runs whose root never arrives ------------------------------------------------------------


def _crashed(sample):
    """The spans a sample run's process exported before it died: all of its own but its root."""
    return [n for n in sample.nodes if n.run_id == sample.run_id and not n.run_root]


def _root(sample):
    return next(n for n in sample.nodes if n.run_id == sample.run_id and n.run_root)


def _statuses(store) -> dict[str, str]:
    return {run.run_id: run.status.value for run in queries.list_runs(store, "default")}


def _daily(store) -> dict[str, int]:
    columns = ("Runs", "Completed", "Failed", "Running", "Incomplete")
    row = store.query(f"SELECT {', '.join(f'sum({c})' for c in columns)} FROM {store.table(schema.AGENT_DAILY)} FINAL")
    return dict(zip(columns, row[0], strict=True))


def test_a_run_whose_root_never_came_turns_incomplete_once_quiet_and_a_late_root_still_wins(store):
    crashed, going = sample_run(51), sample_run(52)  # both started five minutes ago
    now = datetime.now(UTC)
    busy = Node(
        trace_id=_root(going).trace_id, span_id="e" * 16, parent_span_id=_root(going).span_id, name="step now",
        started_at=now - timedelta(seconds=1), duration_ns=1_000_000_000, run_id=going.run_id, type=NodeType.STEP,
    )  # fmt: skip
    store.write(_crashed(crashed) + _crashed(going) + [busy])
    assert _statuses(store) == {crashed.run_id: "running", going.run_id: "running"}  # 30 minutes by default

    store.run_idle_timeout = 60  # the crashed run's spans ended about five minutes ago; one of going's just now
    turned = store.mark_idle_runs()
    last_span = max(n.ended_at for n in _crashed(crashed)).replace(tzinfo=None)
    assert [(r.run_id, r.last_span_at) for r in turned] == [(crashed.run_id, last_span)]
    assert _statuses(store) == {crashed.run_id: "incomplete", going.run_id: "running"}
    row = queries.run_summary(store, "default", crashed.run_id)
    assert row.status is Status.INCOMPLETE and row.ended_at.replace(tzinfo=None) == last_span
    (stats,) = queries.stats(store, "default")  # neither run's root named its agent yet
    assert (stats["runs"], stats["running"], stats["incomplete"], stats["success_rate"]) == (2, 1, 1, 0.0)
    assert _daily(store) == {"Runs": 2, "Completed": 0, "Failed": 0, "Running": 1, "Incomplete": 1}
    assert store.mark_idle_runs() == []  # an incomplete run is not swept again

    store.write([_root(crashed)])  # the root arrives after all: it wins
    assert _statuses(store) == {crashed.run_id: "completed", going.run_id: "running"}
    assert queries.run_summary(store, "default", crashed.run_id).duration_ns == _root(crashed).duration_ns
    assert _daily(store) == {"Runs": 2, "Completed": 1, "Failed": 0, "Running": 1, "Incomplete": 0}
    assert store.mark_idle_runs() == []


def test_spans_that_arrive_long_after_they_ended_make_an_incomplete_run_at_once(store):
    late = sample_run(53, started_at=datetime.now(UTC) - timedelta(hours=3), fail=True)
    store.write(_crashed(late))  # e.g. a spool replayed after an outage: the run is quiet already
    assert _statuses(store) == {late.run_id: "incomplete"}
    assert _daily(store)["Incomplete"] == 1
    store.write([_root(late)])
    assert _statuses(store) == {late.run_id: "failed"}
    assert _daily(store) == {"Runs": 1, "Completed": 0, "Failed": 1, "Running": 0, "Incomplete": 0}


def test_a_sweep_reads_only_the_runs_that_went_quiet_since_its_bound(store):
    crashed = sample_run(54)
    store.write(_crashed(crashed))
    now = datetime.now(UTC).replace(tzinfo=None)
    later = rollups.mark_idle_runs(store.client, store.layout, 60, after=now - timedelta(minutes=1))
    assert later.runs == [] and later.complete and later.before < now  # its last span ended before the window
    everything = rollups.mark_idle_runs(store.client, store.layout, 60)
    assert [r.run_id for r in everything.runs] == [crashed.run_id]


def test_a_backlog_of_quiet_runs_is_swept_a_part_at_a_time(store):
    crashed = [sample_run(seed) for seed in (56, 57, 58)]
    store.write([n for sample in crashed for n in _crashed(sample)])
    parts = []
    while not parts or not parts[-1].complete:
        assert len(parts) < 5
        parts.append(rollups.mark_idle_runs(store.client, store.layout, 60, limit=2))
    assert [len(p.runs) for p in parts] == [2, 1]
    assert sorted(r.run_id for p in parts for r in p.runs) == sorted(s.run_id for s in crashed)
    assert _daily(store)["Incomplete"] == 3


def test_the_writers_sweep_tells_its_listeners_and_survives_a_failing_store(store, caplog):
    crashed = sample_run(55)
    store.write(_crashed(crashed))
    store.run_idle_timeout = 60
    failing = rollups.IdleRunSweep()
    store.client.command(f"DETACH TABLE {store.table(schema.RUNS)}")
    try:
        failing(store)  # logged, not raised: the writer goes on
    finally:
        store.client.command(f"ATTACH TABLE {store.table(schema.RUNS)}")
    assert "trying again later" in caplog.text

    sweep, heard = rollups.IdleRunSweep(), []
    sweep.listeners.append(heard.extend)
    sweep(None)  # no store yet: nothing to do
    sweep(store)
    assert [r.run_id for r in heard] == [crashed.run_id]

"""Run refreshes stay bounded in time, without losing the spans of long-running runs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tracehouse import semconv
from tracehouse.demo import sample_run, sample_runs
from tracehouse.model import Node, NodeType, Usage
from tracehouse.store import rollups, schema


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
            "EXPLAIN indexes = 1 SELECT" + select, {"day": since.date(), "since": since, "meta_prefix": "x."}
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

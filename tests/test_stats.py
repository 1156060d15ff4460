"""Statistics, usage and node performance: against sums computed from the samples themselves."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from conftest import run_cli
from test_api_agents import get, wait_for_run

import tracehouse
from tracehouse.demo import sample_runs
from tracehouse.model import NodeType, Status
from tracehouse.store import queries


@pytest.fixture
def filled(store):
    samples = sample_runs(30, seed=8, days=10)
    for sample in samples:
        store.write(sample.nodes, sample.events)
    return store, [n for s in samples for n in s.nodes]


def test_stats_per_agent_match_the_runs(filled):
    store, nodes = filled
    roots = [n for n in nodes if n.run_root]
    rows = {row["key"]: row for row in queries.stats(store, "default")}
    for agent in {r.agent_name for r in roots}:
        mine = [r for r in roots if r.agent_name == agent]
        row = rows[agent]
        assert row["runs"] == len(mine)
        assert row["failed"] == sum(1 for r in mine if r.status is Status.FAILED)
        assert row["success_rate"] == pytest.approx(row["completed"] / row["runs"])
        own_llm = [n for n in nodes if n.type is NodeType.LLM and n.run_id in {r.run_id for r in mine}]
        assert row["input_tokens"] == sum(n.usage.input_tokens for n in own_llm)
        assert row["cost_usd"] == pytest.approx(sum(n.cost_usd for n in own_llm))
        assert row["p95_seconds"] == pytest.approx(max(r.duration_ns for r in mine) / 1e9, rel=0.1)
    by_user = queries.stats(store, "default", group_by="user")
    assert sum(r["runs"] for r in by_user) == len(roots)
    assert queries.stats(store, "default", group_by="tenant")[0]["runs"] == len(roots)
    recent = queries.stats(store, "default", since=datetime.now(UTC) - timedelta(days=3))
    assert 0 < sum(r["runs"] for r in recent) < len(roots)
    assert queries.stats(store, "someone-else") == []
    with pytest.raises(ValueError):
        queries.stats(store, "default", group_by="colour")


def test_usage_by_model_and_node_performance(filled):
    store, nodes = filled
    expected: dict[str, list] = defaultdict(lambda: [0, 0, 0.0])
    for n in nodes:
        if n.type is NodeType.LLM:
            expected[n.model][0] += 1
            expected[n.model][1] += n.usage.input_tokens
            expected[n.model][2] += n.cost_usd
    rows = queries.usage(store, "default", by="model")
    assert {r["key"]: [r["llm_calls"], r["input_tokens"]] for r in rows} == {k: v[:2] for k, v in expected.items()}
    assert [r["cost_usd"] for r in rows] == sorted((r["cost_usd"] for r in rows), reverse=True)
    assert sum(r["llm_calls"] for r in queries.usage(store, "default", by="run")) == sum(
        v[0] for v in expected.values()
    )
    # Calls count for the agent and user of their run (only the run's root span names them).
    runs = {n.run_id: n for n in nodes if n.run_root}
    by_agent: dict[str, int] = defaultdict(int)
    for n in nodes:
        if n.type is NodeType.LLM:
            by_agent[runs[n.run_id].agent_name] += 1
    assert {r["key"]: r["llm_calls"] for r in queries.usage(store, "default", by="agent")} == by_agent
    assert "" not in {r["key"] for r in queries.usage(store, "default", by="user")}
    slowest = queries.node_performance(store, "default", limit=3)
    assert slowest[0]["name"] == "execute_tool search_hotels" and slowest[0]["failure_rate"] == pytest.approx(0.5)
    assert len(slowest) == 3


def test_stats_over_http_and_in_the_cli(served):
    srv = served()
    config = tracehouse.configure("stats", endpoint=srv.http, batch=False)
    with tracehouse.run("counter") as run:
        with tracehouse.llm_call("gpt-4o", "openai") as call:
            call.record_response("ok", input_tokens=100, output_tokens=10)
    config.flush()
    wait_for_run(srv.http, run.run_id)
    assert get(f"{srv.http}/api/v1/stats")[0]["key"] == "counter"
    assert get(f"{srv.http}/api/v1/usage?by=provider")[0]["key"] == "openai"
    assert get(f"{srv.http}/api/v1/nodes/performance")[0]["name"] == "chat gpt-4o"
    stats = json.loads(run_cli("stats", "--url", srv.http, "--json").stdout)
    assert stats[0]["runs"] == 1 and stats[0]["input_tokens"] == 100
    table = run_cli("usage", "--by", "model", "--url", srv.http).stdout
    assert table.splitlines()[0].startswith("KEY") and "gpt-4o" in table

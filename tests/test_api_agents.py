"""`/api/v1/agents/history` and `/api/v1/agents/logs` over real HTTP, on a store filled by real
OTLP ingestion (the instrumentation exporting to a `tracehouse serve` subprocess)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from test_instrument import _expected_cost, plan_execute_critique

import tracehouse

HISTORY_KEYS = {
    "run_id",
    "status",
    "started_at",
    "duration",
    "input",
    "output",
    "node_count",
    "tokens_used",
    "cost_cents",
    "agent",  # beside the seed's fields
}
LOGS_KEYS = {"run_id", "nodes", "errors", "final_output", "summary"}
NODE_KEYS = {"id", "type", "input", "output", "time", "status", "error_message", "metadata"}
SUMMARY_KEYS = {"total_nodes", "successful_nodes", "failed_nodes", "total_duration", "tokens_used", "cost_cents"}


def get(url: str, headers: dict | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def get_error(url: str, headers: dict | None = None) -> tuple[int, dict]:
    with pytest.raises(urllib.error.HTTPError) as info:
        get(url, headers)
    return info.value.code, json.loads(info.value.read())


def wait_for_history_item(
    base: str, matches: Callable[[dict], bool], what: str, headers: dict | None = None, agent: str | None = None
) -> dict:
    """The newest history item that matches, once the server has stored it."""
    query = "limit=1000" + (f"&agent_id={agent}" if agent else "")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for item in get(f"{base}/api/v1/agents/history?{query}", headers):
            if matches(item):
                return item
        time.sleep(0.3)
    raise AssertionError(f"{what} never showed up")


def wait_for_run(base: str, run_id: str, headers: dict | None = None) -> dict:
    return wait_for_history_item(
        base, lambda item: item["run_id"] == run_id and item["status"] != "running", f"run {run_id}", headers
    )


def test_history_and_logs_keep_their_exact_shapes(served):
    srv = served()
    config = tracehouse.configure("api-test", endpoint=srv.http, batch=False)
    run_id, sub_run_id = plan_execute_critique()
    config.flush()
    item = wait_for_run(srv.http, run_id)
    assert set(item) == HISTORY_KEYS
    assert item["agent"] == "planner"
    assert (item["status"], item["input"], item["output"]) == ("success", "Plan a trip to Rome", "Day 1: Colosseum")
    assert (item["node_count"], item["tokens_used"]) == (5, 1100)
    assert item["cost_cents"] == pytest.approx(_expected_cost() * 100)
    assert item["duration"].endswith("s") and float(item["duration"][:-1]) >= 0
    assert item["started_at"].endswith("+00:00")
    sub = wait_for_run(srv.http, sub_run_id)
    assert (sub["status"], sub["node_count"], sub["output"]) == ("success", 0, "yes")
    assert sub["agent"] == "budget-checker"

    logs = get(f"{srv.http}/api/v1/agents/logs?run_id={run_id}")
    assert set(logs) == LOGS_KEYS and logs["run_id"] == run_id
    assert all(set(node) == NODE_KEYS for node in logs["nodes"])
    by_name = {node["metadata"]["name"]: node for node in logs["nodes"]}
    assert list(by_name) == [
        "plan",
        "chat gpt-4o-mini",
        "execute",
        "execute_tool search_flights",
        "invoke_agent budget-checker",
        "critique",
    ]  # start order
    chat = by_name["chat gpt-4o-mini"]
    assert (chat["type"], chat["status"], chat["metadata"]["model"]) == ("llm", "success", "gpt-4o-mini-2024-07-18")
    assert json.loads(chat["input"])[0]["parts"][0]["content"] == "Plan Rome"
    assert chat["metadata"]["input_tokens"] == 1000 and chat["time"].endswith("s")
    tool = by_name["execute_tool search_flights"]
    assert (tool["type"], json.loads(tool["input"]), json.loads(tool["output"])) == (
        "tool",
        {"to": "FCO"},
        {"best": 620},
    )
    assert by_name["invoke_agent budget-checker"]["metadata"]["run_id"] == sub_run_id  # the sub-agent, as a node
    critique = by_name["critique"]
    assert (critique["status"], critique["error_message"]) == ("failed", "the plan has no rain option")
    assert logs["errors"] == [{"node_id": critique["id"], "type": "Critique", "message": "the plan has no rain option"}]
    assert logs["final_output"] == "Day 1: Colosseum"
    assert set(logs["summary"]) == SUMMARY_KEYS
    summary = logs["summary"]
    assert (summary["total_nodes"], summary["successful_nodes"], summary["failed_nodes"]) == (6, 5, 1)
    assert summary["tokens_used"] == 1100 and summary["cost_cents"] == pytest.approx(_expected_cost() * 100)
    assert summary["total_duration"] == item["duration"]

    # Filters, paging, errors.
    assert [i["run_id"] for i in get(f"{srv.http}/api/v1/agents/history?agent_id=budget-checker")] == [sub_run_id]
    assert get(f"{srv.http}/api/v1/agents/history?agent_id=nobody") == []
    assert len(get(f"{srv.http}/api/v1/agents/history?limit=1")) == 1
    assert get(f"{srv.http}/api/v1/agents/history?skip=2") == []
    status, body = get_error(f"{srv.http}/api/v1/agents/logs?run_id=no-such-run")
    assert status == 404 and "no-such-run" in body["detail"]
    assert get_error(f"{srv.http}/api/v1/agents/history?limit=0")[0] == 422
    assert get_error(f"{srv.http}/api/v1/agents/logs")[0] == 422
    assert "/api/v1/agents/history" in get(f"{srv.http}/openapi.json")["paths"]


def test_no_read_crosses_tenants(served):
    srv = served("--api-keys", "key-a:acme,key-b:globex")
    acme, globex = {"Authorization": "Bearer key-a"}, {"x-api-key": "key-b"}
    config = tracehouse.configure("tenants", endpoint=srv.http, api_key="key-a", batch=False)
    with tracehouse.run("acme-agent") as acme_run:
        pass
    config.flush()
    config = tracehouse.configure("tenants", endpoint=srv.http, api_key="key-b", batch=False)
    with tracehouse.run("globex-agent", tenant="acme") as globex_run:  # claiming another tenant changes nothing
        pass
    config.flush()
    wait_for_run(srv.http, acme_run.run_id, acme)
    wait_for_run(srv.http, globex_run.run_id, globex)
    assert [i["run_id"] for i in get(f"{srv.http}/api/v1/agents/history", acme)] == [acme_run.run_id]
    assert [i["run_id"] for i in get(f"{srv.http}/api/v1/agents/history?tenant=acme", globex)] == [globex_run.run_id]
    assert get_error(f"{srv.http}/api/v1/agents/logs?run_id={acme_run.run_id}", globex)[0] == 404
    assert get(f"{srv.http}/api/v1/agents/logs?run_id={acme_run.run_id}", acme)["run_id"] == acme_run.run_id
    assert get_error(f"{srv.http}/api/v1/agents/history")[0] == 401
    assert get_error(f"{srv.http}/api/v1/agents/history", {"Authorization": "Bearer wrong"})[0] == 401

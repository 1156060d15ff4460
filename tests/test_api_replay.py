"""Replay and resume over real HTTP: a two-run support conversation with a tool call and a
checkpoint, recorded by the instrumentation into a `tracehouse serve` subprocess."""

from __future__ import annotations

import json

import pytest
from test_api_agents import get, get_error, wait_for_run

import tracehouse

LOOKUP = {"id": "call_1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"id": 42}'}}


def conversation() -> tuple[str, str]:
    first_turn = [{"role": "user", "content": "Can I get a refund for order 42?"}]
    with tracehouse.run("support", conversation_id="conv-9") as first:
        with tracehouse.llm_call("gpt-4o-mini", messages=first_turn, system="Be kind.") as call:
            call.record_response(
                [{"role": "assistant", "content": None, "tool_calls": [LOOKUP]}],
                finish_reasons=["tool_calls"],
                input_tokens=30,
                output_tokens=10,
            )
        with tracehouse.tool("lookup_order", {"id": 42}, call_id="call_1") as tool:
            tool.set_result({"status": "delivered"})
        tracehouse.checkpoint("after-lookup", {"order": 42, "status": "delivered"})
        history = [
            *first_turn,
            {"role": "assistant", "content": None, "tool_calls": [LOOKUP]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "delivered"}'},
        ]
        with tracehouse.llm_call("gpt-4o-mini", messages=history, system="Be kind.") as call:
            call.record_response("It was delivered, so the refund is approved.", input_tokens=60, output_tokens=12)
    history += [
        {"role": "assistant", "content": "It was delivered, so the refund is approved."},
        {"role": "user", "content": "Thanks!"},
    ]
    with tracehouse.run("support", conversation_id="conv-9") as second:
        with tracehouse.llm_call("gpt-4o-mini", messages=history, system="Be kind.") as call:
            call.record_response("You are welcome.", input_tokens=80, output_tokens=4)
    return first.run_id, second.run_id


def test_replay_and_resume(served):
    srv = served()
    config = tracehouse.configure("support", endpoint=srv.http, batch=False)
    first, second = conversation()
    config.flush()
    wait_for_run(srv.http, first)
    wait_for_run(srv.http, second)
    base = f"{srv.http}/api/v1"

    transcript = get(f"{base}/runs/{first}/events?mode=transcript")
    assert transcript["mode"] == "transcript"
    assert [(e["role"], e["content"]) for e in transcript["events"]] == [
        ("system", "Be kind."),
        ("user", "Can I get a refund for order 42?"),
        ("assistant", "It was delivered, so the refund is approved."),
    ]
    full = get(f"{base}/runs/{first}/events")["events"]
    assert [(e["kind"], e["name"] or e["role"]) for e in full] == [
        ("message", "system"),
        ("message", "user"),
        ("tool_call", "lookup_order"),  # asked for by the model; the tool span's copy is not repeated
        ("tool_result", "lookup_order"),
        ("checkpoint", "after-lookup"),
        ("message", "assistant"),
    ]
    assert [e["tool_call_id"] for e in full if e["kind"].startswith("tool")] == ["call_1", "call_1"]
    assert json.loads(full[3]["content"]) == {"status": "delivered"}
    timestamps = [e["timestamp"] for e in full]
    assert timestamps == sorted(timestamps)

    whole = get(f"{base}/conversations/conv-9/events?mode=transcript")["events"]
    assert [(e["role"], e["run_id"]) for e in whole] == [
        ("system", first),
        ("user", first),
        ("assistant", first),
        ("user", second),
        ("assistant", second),
    ]
    assert whole[-1]["content"] == "You are welcome."

    resume = get(f"{base}/runs/{first}/resume?until_checkpoint=after-lookup")
    assert resume["messages"] == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Can I get a refund for order 42?"},
        {"role": "assistant", "content": None, "tool_calls": [LOOKUP]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "delivered"}'},
    ]
    assert resume["checkpoint"]["id"] == "after-lookup"
    assert json.loads(resume["checkpoint"]["state"]) == {"order": 42, "status": "delivered"}
    whole_run = get(f"{base}/runs/{first}/resume")
    assert whole_run["messages"][-1] == {"role": "assistant", "content": "It was delivered, so the refund is approved."}
    assert whole_run["checkpoint"]["id"] == "after-lookup"  # the latest checkpoint of the run

    assert get_error(f"{base}/runs/{first}/resume?until_checkpoint=nope")[0] == 404
    assert get_error(f"{base}/runs/no-such-run/events")[0] == 404
    assert get_error(f"{base}/conversations/no-such-conversation/events")[0] == 404
    assert get_error(f"{base}/runs/{first}/events?mode=everything")[0] == 422
    assert get_error(f"{base}/runs/{first}/events?tenant=someone-else")[0] == 404  # another tenant sees nothing


def test_deletion_and_retention_routes(served):
    import urllib.request

    srv = served("--api-keys", "k-acme:acme,k-globex:globex")
    acme, globex = {"Authorization": "Bearer k-acme"}, {"Authorization": "Bearer k-globex"}
    config = tracehouse.configure("forget", endpoint=srv.http, api_key="k-acme", batch=False)
    with tracehouse.run("agent", user_id="u-1") as doomed:
        pass
    with tracehouse.run("agent", user_id="u-2") as kept:
        pass
    config.flush()
    wait_for_run(srv.http, doomed.run_id, acme)
    wait_for_run(srv.http, kept.run_id, acme)

    def call(method: str, path: str, headers: dict, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{srv.http}/api/v1{path}",
            data=data,
            method=method,
            headers={**headers, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as info:  # another tenant cannot delete it
        call("DELETE", f"/runs/{doomed.run_id}", globex)
    assert info.value.code == 404
    removed = call("DELETE", f"/runs/{doomed.run_id}", acme)
    assert removed["removed"]["runs"] == 1 and removed["total"] >= 2
    assert get_error(f"{srv.http}/api/v1/agents/logs?run_id={doomed.run_id}", acme)[0] == 404
    assert call("DELETE", "/users/u-2", acme)["removed"]["runs"] == 1
    assert get(f"{srv.http}/api/v1/agents/history", acme) == []
    assert call("GET", "/retention", acme) == {"retention_days": None, "payload_retention_days": None}
    assert call("PUT", "/retention", acme, {"retention_days": 7}) == {"retention_days": 7, "payload_retention_days": 7}
    assert call("GET", "/retention", acme)["retention_days"] == 7
    assert call("GET", "/retention", globex)["retention_days"] is None
    with pytest.raises(urllib.error.HTTPError) as info:
        call("PUT", "/retention", acme, {"retention_days": 0})
    assert info.value.code == 422
    assert "removed" in call("POST", "/retention/cleanup", acme)

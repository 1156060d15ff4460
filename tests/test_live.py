"""The live stream: a real WebSocket client following runs as a real server stores them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from conftest import run_cli
from serve_helpers import unused_port
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

import tracehouse
from tracehouse.cli import format_live


class Boom(Exception):
    pass


def _collect(ws, until_runs: int) -> list[dict]:
    messages, finished = [], 0
    while finished < until_runs:
        message = json.loads(ws.recv(timeout=120))
        messages.append(message)
        finished += message["type"] in ("execution_completed", "execution_failed")
    return messages


def test_runs_stream_in_order_with_filters(served):
    srv = served()
    ws_base = srv.http.replace("http://", "ws://")
    with (
        connect(f"{ws_base}/ws/events?agent=live-agent") as everything,
        connect(f"{ws_base}/ws/events?agent=other-agent") as unrelated,
    ):
        config = tracehouse.configure("live", endpoint=srv.http, batch=False)
        with tracehouse.run("live-agent") as ok:
            with tracehouse.node("think"):
                pass
            with tracehouse.tool("search"):
                pass
        with pytest.raises(Boom), tracehouse.run("live-agent") as failing:
            with tracehouse.node("explode"):
                raise Boom("kaboom")
        config.flush()
        messages = _collect(everything, until_runs=2)
        with pytest.raises(TimeoutError):
            unrelated.recv(timeout=2)  # another agent's subscriber hears nothing
    per_run = {run.run_id: [m for m in messages if m["run_id"] == run.run_id] for run in (ok, failing)}
    assert [(m["type"], m.get("node", {}).get("name")) for m in per_run[ok.run_id]] == [
        ("execution_started", None),
        ("node_executed", "think"),
        ("node_executed", "execute_tool search"),
        ("execution_completed", None),
    ]
    assert per_run[ok.run_id][-1]["status"] == "completed" and per_run[ok.run_id][0]["agent"] == "live-agent"
    failed = per_run[failing.run_id]
    assert [m["type"] for m in failed] == ["execution_started", "node_executed", "execution_failed"]
    assert failed[1]["node"]["status"] == "failed" and failed[-1]["error"] == "kaboom"
    assert all("tenant" not in m for m in messages)


def test_a_run_filter_and_keys(served):
    srv = served("--api-keys", "k1:acme")
    ws_base = srv.http.replace("http://", "ws://")
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{ws_base}/ws/events")  # no key: the handshake is refused
    assert refused.value.response.status_code == 403
    config = tracehouse.configure("live", endpoint=srv.http, api_key="k1", batch=False)
    run_id = tracehouse.instrument.new_run_id()
    with connect(f"{ws_base}/ws/events?run_id={run_id}&api_key=k1") as one_run:
        with tracehouse.run("a"):
            pass
        with tracehouse.run("b", run_id=run_id):
            pass
        config.flush()
        messages = _collect(one_run, until_runs=1)
    assert {m["run_id"] for m in messages} == {run_id}
    assert [m["type"] for m in messages] == ["execution_started", "execution_completed"]


def test_tail_follows_a_run_in_the_terminal_and_the_client(served):
    srv = served("--api-keys", "k1:acme")
    tail = subprocess.Popen(
        [sys.executable, "-m", "tracehouse.cli", "tail", "--url", srv.http, "--api-key", "k1", "--agent", "tailed",
         "--idle-timeout", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert "following" in tail.stderr.readline()  # printed once connected
        events = tracehouse.Client(srv.http, "k1").tail(run_id=None, agent="tailed", idle_timeout=120)
        config = tracehouse.configure("live", endpoint=srv.http, api_key="k1", batch=False)
        with pytest.raises(Boom), tracehouse.run("tailed") as run:
            with tracehouse.tool("lookup"):
                pass
            raise Boom("no luck")
        config.flush()
        lines = [tail.stdout.readline().strip() for _ in range(3)]
        from_client = [next(events) for _ in range(3)]
    finally:
        tail.terminate()
        tail.wait(timeout=30)
    assert all(line.startswith(run.run_id) for line in lines), lines
    assert "execution_started" in lines[0]
    assert "node_executed" in lines[1] and "execute_tool lookup [tool] completed" in lines[1]
    assert "execution_failed" in lines[2] and "error: no luck" in lines[2]
    assert [e["type"] for e in from_client] == ["execution_started", "node_executed", "execution_failed"]


def test_tail_without_a_server_or_key_says_why():
    nobody = f"http://127.0.0.1:{unused_port()}"
    done = run_cli("tail", "--url", nobody, "--idle-timeout", "1")
    assert done.returncode == 2 and "tail needs a running server" in done.stderr and "Traceback" not in done.stderr


def test_a_follower_of_an_agent_gets_the_events_stored_before_the_run_named_its_agent():
    # Only the run's own span names the agent, and it arrives last: its children may be stored
    # (and published) in an earlier batch, while the agent is unknown.
    from tracehouse.api.live import LiveHub, _Subscriber
    from tracehouse.demo import sample_run

    sample = sample_run(5, agent="planner")
    own = [n for n in sample.nodes if n.run_id == sample.run_id]
    root = next(n for n in own if n.run_root)
    children = [n.model_copy(update={"agent_name": ""}) for n in own if not n.run_root]
    hub = LiveHub()
    follower = _Subscriber("default", "planner", None)
    everyone = _Subscriber("default", None, None)
    first, second = hub.messages(children), hub.messages([root])

    def seen(subscriber):
        return [(m["type"], m.get("node", {}).get("id")) for m in first + second if subscriber.wants(m)]

    expected = (
        [("execution_started", None)]
        + [("node_executed", n.span_id) for n in children]
        + [("execution_failed" if root.status.value == "failed" else "execution_completed", None)]
    )
    assert seen(follower) == expected
    assert seen(everyone) == expected  # no event twice for a subscriber without an agent filter
    assert hub.messages([root]) == [m for m in second if "late" not in m]  # held events go once


# An agent whose process dies inside its run: the node it finished is exported (no batching),
# the run's own span never ends, so it is never sent.
CRASHING_AGENT = """
import os, sys
import tracehouse
tracehouse.configure("crashy", endpoint=sys.argv[1], batch=False)
with tracehouse.run("crashy") as run:
    with tracehouse.node("fetch"):
        pass
    print(run.run_id, flush=True)
    os._exit(1)
"""


def test_a_run_whose_agent_died_is_announced_incomplete(served):
    srv = served("--run-idle-timeout", "3s")
    with connect(f"{srv.http.replace('http://', 'ws://')}/ws/events") as ws:
        # A first run warms the server up, so the crashing one is stored soon after it is sent.
        config = tracehouse.configure("live", endpoint=srv.http, batch=False)
        with tracehouse.run("warm-up"):
            pass
        config.flush()
        _collect(ws, until_runs=1)
        crashed = subprocess.run(
            [sys.executable, "-c", CRASHING_AGENT, srv.http], capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        assert crashed.returncode == 1, crashed.stderr
        run_id = crashed.stdout.strip()
        messages: list[dict] = []
        while not any(m["type"] == "execution_incomplete" for m in messages):
            messages.append(json.loads(ws.recv(timeout=120)))  # bounded: the sweep runs every 0.75 s here
    mine = [m for m in messages if m["run_id"] == run_id]
    assert [m["type"] for m in mine] == ["execution_started", "node_executed", "execution_incomplete"]
    node, incomplete = mine[1]["node"], mine[2]
    assert node["name"] == "fetch" and incomplete["status"] == "incomplete" and incomplete["error"] == ""
    node_end = datetime.fromisoformat(node["started_at"]) + timedelta(milliseconds=node["duration_ms"])
    assert abs(datetime.fromisoformat(incomplete["last_span_at"]) - node_end) < timedelta(milliseconds=1)
    assert format_live(incomplete).startswith(f"{run_id}  ")
    assert "execution_incomplete incomplete, last span ended " in format_live(incomplete)


def test_an_incomplete_run_releases_the_events_held_for_its_agents_followers():
    from datetime import UTC

    from tracehouse.api.live import LiveHub, _Subscriber
    from tracehouse.demo import sample_run
    from tracehouse.store import IdleRun

    sample = sample_run(6)
    children = [n for n in sample.nodes if n.run_id == sample.run_id and not n.run_root]
    hub = LiveHub()
    follower, everyone = _Subscriber("default", "planner", None), _Subscriber("default", None, None)
    stored = hub.messages(children)  # the agent is not known yet: held for agent followers
    last = max(n.ended_at for n in children).replace(tzinfo=None)
    quiet = IdleRun("default", sample.run_id, "planner", children[0].started_at, last, 1_000_000)
    announced = hub.incomplete_messages([quiet])  # the run's row names its agent (its spans did)
    held = [m["type"] for m in stored]
    assert [m["type"] for m in announced if follower.wants(m)] == [*held, "execution_incomplete"]
    assert [m["type"] for m in announced if everyone.wants(m)] == ["execution_incomplete"]
    (event,) = [m for m in announced if m["type"] == "execution_incomplete"]
    assert event["last_span_at"] == last.replace(tzinfo=UTC).isoformat() and event["duration_ms"] == 1.0
    unknown = hub.incomplete_messages([IdleRun("default", "run-x", "", last, last, 0)])
    assert [m["type"] for m in unknown] == ["execution_incomplete"] and unknown[0]["agent"] == ""

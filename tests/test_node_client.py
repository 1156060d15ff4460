"""A non-Python client: a Node.js program with the official OpenTelemetry JS SDK sends an agent run
to a real ``tracehouse serve`` over gRPC, HTTP/protobuf and HTTP/JSON, and it reads back right.

The JS packages are installed with ``npm ci`` from the committed lockfile in ``tests/node``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import serve_helpers
from otel_helpers import KNOWN_NAMES
from test_api_agents import wait_for_run

import tracehouse
from tracehouse.pricing import cost_usd

NODE_DIR = Path(__file__).resolve().parent / "node"
PROGRAM = NODE_DIR / "send_run.mjs"


@pytest.fixture(scope="module")
def node_program() -> list[str]:
    """``node send_run.mjs``, with its packages installed from the lockfile when they are not."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js and npm are needed for this test (the machine image has them)"
    installed = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    return [node, str(PROGRAM)]


@pytest.fixture(scope="module")
def node_server(tmp_path_factory):
    """One server for the three protocols (each run has its own trace, so they do not mix)."""
    server = serve_helpers.Server(str(tmp_path_factory.mktemp("node") / "data"), ("--api-keys", "nodekey:node-team"))
    yield server.start()
    server.stop()


def test_the_js_program_sets_only_attribute_names_tracehouse_knows():
    used = set(re.findall(r"'((?:gen_ai|user)\.[a-z_.]+)'", PROGRAM.read_text()))
    assert used and used <= KNOWN_NAMES, used - KNOWN_NAMES


@pytest.mark.parametrize("protocol", ["grpc", "http-proto", "http-json"])
def test_a_nodejs_agent_run_reads_back(node_server, node_program, protocol):
    srv = node_server
    url = f"http://{srv.grpc}" if protocol == "grpc" else f"{srv.http}/v1/traces"
    env = {**os.environ, "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=nodekey", "CONVERSATION_ID": f"conv-{protocol}"}
    sent = subprocess.run([*node_program, protocol, url], env=env, capture_output=True, text=True, timeout=300)
    assert sent.returncode == 0, sent.stderr
    trace_id = json.loads(sent.stdout.strip().splitlines()[-1])["trace_id"]
    run_id = trace_id  # no tracehouse.run.id: the trace is the run

    key = {"x-api-key": "nodekey"}
    item = wait_for_run(srv.http, run_id, key)
    assert item["status"] == "success" and "Lisbon" in item["input"] and "TP1234" in item["output"]
    assert item["tokens_used"] == 1280 and item["node_count"] == 3

    client = tracehouse.Client(srv.http, "nodekey")
    logs = client.logs(run_id)
    by_name = {n.metadata["name"]: n for n in logs.nodes}
    chat = by_name["chat gpt-4o-mini"]
    assert chat.type == "llm" and chat.metadata["model"] == "gpt-4o-mini"
    assert (chat.metadata["input_tokens"], chat.metadata["output_tokens"]) == (1200, 80)
    expected_cost = cost_usd("gpt-4o-mini", 1200, 80)
    assert expected_cost > 0 and chat.metadata["cost_cents"] == pytest.approx(expected_cost * 100, rel=1e-3)
    search = by_name["execute_tool search_flights"]
    assert search.type == "tool" and "OSL" in search.input and "TP1234" in search.output
    failed = by_name["execute_tool book_hotel"]
    assert failed.status == "failed" and failed.error_message == "hotel service timed out"
    assert [e.message for e in logs.errors] == ["hotel service timed out"]
    assert "TP1234" in logs.final_output

    replay = client.events(run_id)
    kinds = [(e.kind, e.role if e.kind == "message" else e.name) for e in replay.events]
    assert ("message", "user") in kinds and ("tool_call", "search_flights") in kinds
    assert ("tool_result", "search_flights") in kinds
    # The key named the tenant: another tenant (or no key) does not see the run.
    with pytest.raises(tracehouse.client.ClientError):
        tracehouse.Client(srv.http).logs(run_id)

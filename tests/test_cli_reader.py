"""The CLI's read commands and the Python client: through a server, then from the store alone."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from conftest import run_cli
from serve_helpers import unused_port
from test_api_agents import wait_for_run
from test_api_replay import conversation

import tracehouse
from tracehouse.responses import HistoryItem


def test_the_client_and_the_cli_read_the_same_runs_with_or_without_a_server(served):
    srv = served()
    config = tracehouse.configure("cli", endpoint=srv.http, batch=False)
    first, second = conversation()
    config.flush()
    wait_for_run(srv.http, first)
    wait_for_run(srv.http, second)

    client = tracehouse.Client(srv.http)
    history = client.history(agent="support")
    assert all(isinstance(item, HistoryItem) for item in history)
    assert [item.run_id for item in history] == [second, first]
    with pytest.raises(tracehouse.client.NotFound):
        client.logs("no-such-run")
    assert client.resume(first, until_checkpoint="after-lookup").checkpoint.id == "after-lookup"

    store = f"chdb://{srv.store_dir}"
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    commands = (
        ["runs"],
        ["logs", first],
        ["replay", first, "--mode", "transcript"],
        ["stats", "--since", since],
        ["usage", "--by", "agent"],
    )
    via_server = {}
    for command in commands:
        result = run_cli(*command, "--url", srv.http, "--store", store, "--json", "-v")
        assert result.returncode == 0, result.stderr
        assert f"reading from the server at {srv.http}" in result.stderr
        via_server[command[0]] = json.loads(result.stdout)
    assert [(r["run_id"], r["agent"]) for r in via_server["runs"]] == [(second, "support"), (first, "support")]
    assert via_server["logs"] == client.logs(first).model_dump(mode="json")
    assert [e["role"] for e in via_server["replay"]["events"]] == ["system", "user", "assistant"]
    assert [(row["key"], row["runs"]) for row in via_server["stats"]] == [("support", 2)]
    assert [row["key"] for row in via_server["usage"]] == ["support"]
    text = run_cli("replay", first, "--url", srv.http, "--store", store).stdout
    assert "user" in text and "Can I get a refund for order 42?" in text and "tool_call lookup_order" in text
    openai = json.loads(run_cli("replay", first, "--format", "openai", "--url", srv.http, "--store", store).stdout)
    assert openai == client.resume(first).messages
    table_via_server = run_cli("runs", "--url", srv.http, "--store", store).stdout
    header = table_via_server.splitlines()[0].split()
    assert header[:4] == ["STARTED", "(UTC)", "AGENT", "STATUS"], header

    srv.stop()  # no server any more: the CLI opens the store itself
    nobody = f"http://127.0.0.1:{unused_port()}"
    for command in commands:
        result = run_cli(*command, "--url", nobody, "--store", store, "--json", "-v")
        assert result.returncode == 0, result.stderr
        assert "reading the store" in result.stderr and "directly" in result.stderr
        assert json.loads(result.stdout) == via_server[command[0]]
    table = run_cli("runs", "--url", nobody, "--store", store).stdout
    assert table == table_via_server  # the same columns and rows, whichever way it was read
    assert first in table and second in table and "success" in table and " support " in table
    gone = run_cli("logs", "no-such-run", "--url", nobody, "--store", store)
    assert gone.returncode == 2 and "not found" in gone.stderr and "Traceback" not in gone.stderr
    deleted = run_cli("delete", second, "--url", nobody, "--store", store)
    assert deleted.returncode == 0 and "deleted run" in deleted.stdout
    remaining = json.loads(run_cli("runs", "--url", nobody, "--store", store, "--json").stdout)
    assert [r["run_id"] for r in remaining] == [first]

    # Retention: shown, set (payloads shorter), shown again, applied now; bad input is an error.
    def retention(*args: str) -> subprocess.CompletedProcess:
        return run_cli("retention", *args, "--url", nobody, "--store", store)

    assert retention().stdout.strip() == "retention: server default days; payloads: same as retention days"
    assert "retention: 60 days; payloads: 7 days" in retention("--days", "60", "--payload-days", "7").stdout
    assert json.loads(retention("--json").stdout) == {"retention_days": 60, "payload_retention_days": 7}
    cleaned = retention("--cleanup")
    assert cleaned.returncode == 0 and cleaned.stdout.startswith("removed: "), cleaned.stderr
    refused = retention("--payload-days", "7")
    assert refused.returncode == 2 and "--payload-days needs --days" in refused.stderr
    too_long = retention("--days", "10", "--payload-days", "20")
    assert too_long.returncode == 2 and "Traceback" not in too_long.stderr, too_long.stderr

"""The `tracehouse` command as a user runs it, in its own process."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import run_cli

from tracehouse.store import migrations


def test_demo_fills_a_fresh_store_and_shows_a_run(tmp_path):
    result = run_cli("demo", "--runs", "3", "--no-serve", cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"to chdb://{tmp_path}/tracehouse-data (database tracehouse)" in out  # the default store
    assert "Wrote 3 sample runs" in out
    listed = re.findall(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  (\S+)\s+(\w+)", out, re.MULTILINE)
    assert len(listed) == 3 and all(status in ("completed", "failed") for _, status in listed)
    tree = out.split("span by span:", 1)[1]
    assert re.search(r"^invoke_agent trip-planner  \[agent\]  completed", tree, re.MULTILINE)
    assert re.search(r"^│  └─ chat gpt-4o-mini  \[llm\]  completed .* tokens  \$0\.\d{4}$", tree, re.MULTILINE)
    assert re.search(r"search_hotels  \[tool\]  failed .* error: TimeoutError", tree)
    assert re.search(r"^├─ invoke_agent budget-checker  \[agent\] .* run run-", tree, re.MULTILINE)
    replay = out.split("Its replay", 1)[1]
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3}  user +Plan a 3-day trip", replay, re.MULTILINE)
    assert re.search(r"tool_call search_flights", replay) and re.search(r"checkpoint after-search", replay)
    # A second demo adds to the same store.
    again = run_cli("demo", "--runs", "1", "--no-serve", cwd=str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert len(re.findall(r"^\d{4}-\d\d-\d\d ", again.stdout, re.MULTILINE)) == 4


def test_demo_goes_on_serving_its_runs_until_interrupted(tmp_path):
    command = [sys.executable, "-m", "tracehouse.cli", "demo", "--runs", "2", "--http-port", "0", "--grpc-port", "0"]
    demo = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in demo.stdout:
            lines.append(line)
            opened = re.match(r"open (http://127\.0\.0\.1:\d+)/ to browse the sample runs", line)
            if opened:
                break
        else:
            raise AssertionError("the demo did not serve:\n" + "".join(lines))
        assert "Wrote 2 sample runs" in "".join(lines) and "Its replay" in "".join(lines)
        url = opened.group(1)
        with urllib.request.urlopen(f"{url}/", timeout=30) as page:
            assert len(re.findall(r"<tr data-run-id=", page.read().decode())) == 2
        with urllib.request.urlopen(f"{url}/api/v1/agents/history", timeout=30) as history:
            assert len(json.loads(history.read())) == 4  # with their sub-agent runs
        # Taking more, like tracehouse serve.
        record = (
            f"import tracehouse\nconfig = tracehouse.configure('more', endpoint={url!r}, batch=False)\n"
            "with tracehouse.run('more', input='one more'):\n    pass\nconfig.flush()"
        )
        subprocess.run([sys.executable, "-c", record], check=True, timeout=120)
        deadline = time.monotonic() + 60
        while "one more" not in urllib.request.urlopen(f"{url}/", timeout=30).read().decode():
            assert time.monotonic() < deadline, "the run sent to the demo never showed"
            time.sleep(0.3)
    finally:
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, rest
    assert "tracehouse serve: stopped; everything acknowledged is stored" in rest


def test_migrate_reports_the_schema_version(tmp_path):
    first = run_cli("migrate", "--store", f"chdb://{tmp_path}/s")
    assert first.returncode == 0, first.stderr
    latest = migrations.LATEST_VERSION
    applied = ", ".join(str(m.version) for m in migrations.MIGRATIONS)
    assert f"schema version {latest} (applied {applied})" in first.stdout
    second = run_cli("migrate", "--store", f"chdb://{tmp_path}/s")
    assert f"schema version {latest} (up to date)" in second.stdout


def test_store_can_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEHOUSE_STORE", f"chdb://{tmp_path}/from-env")
    result = run_cli("migrate")
    assert result.returncode == 0, result.stderr
    assert f"chdb://{tmp_path}/from-env" in result.stdout


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path):
    for args, message in (
        (("migrate", "--store", "mysql://x"), "unsupported store DSN scheme"),
        (("demo", "--store", f"chdb://{tmp_path}/x", "--runs", "0"), "--runs must be at least 1"),
        (("demo", "--store", f"chdb://{tmp_path}/x", "--http-port", "70000"), "--http-port must be between 0 and"),
        (("migrate", "--store", "chdb:///x", "--cluster", "c"), "--cluster needs a ClickHouse server DSN"),
        (("serve", "--store", f"chdb://{tmp_path}/y", "--batch-interval", "0"), "--batch-interval must be between"),
        (("serve", "--store", f"chdb://{tmp_path}/y", "--run-idle-timeout", "soon"), "'soon' is not a duration"),
        (("serve", "--store", f"chdb://{tmp_path}/y", "--run-idle-timeout", "0.5"), "must be at least 1 second"),
    ):
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stdout)
        assert message in result.stderr and "Traceback" not in result.stderr


def test_durations_are_seconds_or_written_with_units():
    from tracehouse.cli import parse_duration

    assert [parse_duration(t) for t in ("1800", "2.5", "90s", "30m", "1h30m", "1.5h", "2d", " 10M ")] == [
        1800, 2.5, 90, 1800, 5400, 5400, 172800, 600,
    ]  # fmt: skip
    for bad in ("", "m", "30 m", "1x", "h1", "1h-5m"):
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(bad)


def test_every_command_has_a_handler():
    import argparse

    from tracehouse.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        assert callable(sub.get_default("handler")), name


def test_logs_print_the_nodes_as_a_tree():
    from tracehouse.cli import format_logs
    from tracehouse.responses import LogNode, LogsResponse, LogSummary

    def node(id_: str, name: str, parent: str, status: str = "success", error: str = "") -> LogNode:
        return LogNode(id=id_, type="step", input="", output="", time="1s", status=status, error_message=error,
                       metadata={"name": name, "parent_id": parent})  # fmt: skip

    logs = LogsResponse(
        run_id="r1",
        nodes=[
            node("a", "plan", "root"),
            node("b", "search", "a"),
            node("c", "retry", "b", "failed", "timeout"),
            node("d", "answer", "root"),
        ],
        errors=[],
        final_output="done",
        summary=LogSummary(
            total_nodes=4, successful_nodes=3, failed_nodes=1, total_duration="4s", tokens_used=0, cost_cents=0.0
        ),  # fmt: skip
    )
    lines = format_logs(logs).splitlines()
    assert lines[1:5] == [
        "  ├─ plan  [step]  success  1s",
        "  │  └─ search  [step]  success  1s",
        "  │     └─ retry  [step]  failed  1s  error: timeout",
        "  └─ answer  [step]  success  1s",
    ]
    assert lines[-1] == "final output: done"

"""The benchmark scripts, run short: they must keep working. Their full runs are the figures
in docs/benchmarks.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script: str, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout[result.stdout.index("{") :])


def test_store_write_benchmark_runs():
    report = _run("store_write.py", "--runs", "40", "--batch", "20", "--queries", "5")
    assert report["runs"] == 40 and report["spans"] > 300
    assert report["write_spans_per_s"] > 0 and report["history_page_ms_p95"] > 0


def test_ingest_benchmark_runs():
    report = _run("ingest.py", "--transport", "http", "--clients", "1", "--seconds", "2")
    assert report["spans_acknowledged"] >= 1000 and report["refused_requests"] == 0
    assert report["stored_spans_per_s"] > 0 and report["server_peak_rss_mib"] > 0


def test_instrument_benchmark_runs():
    report = _run("instrument.py", "--spans", "2000", "--rounds", "1")
    assert set(report["ns_per_span"]) == {"bare_node", "tracehouse_node", "bare_llm_call", "tracehouse_llm_call"}
    assert report["node_ratio"] > 0 and report["llm_call_ratio"] > 0


def test_imports_benchmark_runs():
    report = _run("imports.py", "--repeat", "1")
    assert set(report["cases"]) == {"bare_otel_sdk", "import_tracehouse", "record_a_run", "import_client"}
    assert all(case["modules"] > 0 and case["import_ms"] > 0 for case in report["cases"].values())
    assert all(not case["server_modules_loaded"] for case in report["cases"].values())


def test_queries_benchmark_runs():
    report = _run("queries.py", "--runs", "300", "--batch", "100", "--samples", "5")
    assert report["spans"] > 3000 and report["run_rows"] == 600
    assert set(report["latency"]) == {"history_page", "history_page_agent", "run_logs", "replay", "stats_30_days"}
    assert all(v["p95_ms"] > 0 for v in report["latency"].values())


def test_rollup_benchmark_runs():
    report = _run("rollup.py", "--runs", "5000", "--repeat", "1")
    assert report["runs_today"] == 5000 and report["machine"]
    assert report["refresh_of_one_minute_s"] > 0 and report["recompute_of_the_whole_day_s"] > 0


def test_writer_benchmark_runs():
    report = _run("writer.py", "--requests", "3")
    assert report["spans"] == 3000 and report["batches"] >= 1
    assert report["stored_spans_per_s"] > 0 and report["cpu_us_per_span"] > 0
    assert any(kind.startswith("INSERT INTO") and kind.endswith(".otel_traces") for kind in report["statements"])
    assert report["floor"]["tables"]["otel_traces"]["rows"] == 3000 and report["floor"]["cpu_us_per_span"] > 0
    assert report["writer_over_floor"] > 1  # the writer does more than the engine's insert alone


def test_receiver_benchmark_runs():
    report = _run("receiver.py", "--requests", "2", "--rounds", "1")
    assert report["spans"] == 2000 and report["cpu_us_per_span"] > 0


def test_fuzz_benchmark_runs():
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "fuzz.py"), "--cases", "80", "--run-every", "20", "--seed", "3"]
        + ["--servers", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout[result.stdout.index("{") :])
    # The script works and its report adds up; what it finds is tests/test_fuzz.py's to fail on
    # (it says so in its exit status).
    broken = report["server_errors"] or report["crashes"] or report["writer_stops"] or report["valid_runs_refused"]
    assert result.returncode == (1 if broken else 0), result.stderr
    assert report["cases"] == 80 == sum(sum(answers.values()) for answers in report["answers_by_channel"].values())
    channels = report["answers_by_channel"]
    assert len(channels) >= 4 and all(re.fullmatch(r"(http/(protobuf|json)|grpc)(\+gzip)?", c) for c in channels)
    assert report["valid_runs_sent"] + report["valid_runs_refused"] == 4  # cases 0, 1, 40, 41: each server's 0th, 20th
    assert report["servers"] == 2 and report["workers"] >= 1
    assert report["cases_per_s"] > 0 and report["machine"]


def test_web_benchmark_runs():
    report = _run("web.py", "--spans", "4000", "--big-run", "1200", "--samples", "2", "--browser-samples", "1")
    assert report["spans"] >= 4000 and report["runs"] > 100 and report["big_run_spans"] == 1200
    pages = report["pages"]
    assert {"runs", "runs_search", "run_typical_tree", "run_big_tree", "run_big_timeline", "node_detail"} <= set(pages)
    assert all(0 < v["p50_ms"] <= v["p95_ms"] <= v["max_ms"] and v["bytes"] > 0 for v in pages.values())
    # The big run's tree is paged: its first page, and "show more" for the next one.
    assert report["big_tree_rows_on_first_page"] == 500 and report["big_tree_paged"]
    assert "run_big_tree_next_page" in pages
    browser = report["browser_big_tree"]
    assert "skipped" in browser or (browser["rows_shown"] == 500 and browser["shown"]["p50_ms"] > 0)
    assert set(report["met"]) == {"server_ms_p95", "browser_tree_ms"} and report["machine"]

"""What recording an agent loads: ``python -X importtime`` of ``import tracehouse``, and of
configuring and recording a run (a run, a step, an LLM call, a tool) to an in-memory exporter,
in fresh interpreters (--repeat times each, the best kept), against a bare ``import
opentelemetry.sdk.trace``. Also what ``import tracehouse.client`` loads. Reports the time
each spent importing (the sum of the top-level imports' cumulative times), how many modules
each loaded, and which of the server's modules (the store, the engine, the HTTP app, gRPC's
server) any of them loaded: none is the rule ``tests/test_imports.py`` enforces. Prints one
JSON object.

    .venv/bin/python benchmarks/imports.py
    .venv/bin/python benchmarks/imports.py --repeat 20
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from report import print_report

SRC = Path(__file__).resolve().parents[1] / "src"

# A run, a step, an LLM call and a tool, recorded wherever tracehouse is configured to send them
# (tests/test_imports.py records the same run).
RECORD = """
import tracehouse

with tracehouse.run("planner", input="Plan a trip") as run:
    with tracehouse.node("plan"):
        with tracehouse.llm_call("gpt-4o-mini", "openai", [{"role": "user", "content": "Plan"}]) as llm:
            llm.record_response("1. flights", input_tokens=10, output_tokens=5)
    with tracehouse.tool("search_flights", {"to": "FCO"}) as t:
        t.set_result({"best": 620})
    run.set_output("done")
"""
IN_MEMORY = """
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk._logs.export import InMemoryLogExporter
import tracehouse
spans = InMemorySpanExporter()
tracehouse.configure("agent", exporter=spans, log_exporter=InMemoryLogExporter(), batch=False)
"""

CASES = {
    "bare_otel_sdk": "import opentelemetry.sdk.trace",
    "import_tracehouse": "import tracehouse",
    "record_a_run": IN_MEMORY + RECORD + "assert len(spans.get_finished_spans()) == 4\n",
    "import_client": "import tracehouse.client",
}

# What only a server needs: none of it may load on the recording side or in the client.
SERVER_MODULES = (
    "clickhouse_connect", "chdb", "fastapi", "starlette", "uvicorn", "prometheus_client", "jinja2",
    "grpc", "tracehouse.store", "tracehouse.ingest", "tracehouse.api", "tracehouse.web", "tracehouse.server",
)  # fmt: skip

_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def measure(code: str) -> dict:
    """One fresh interpreter's import time (µs, the top-level imports' cumulative times) and
    the modules it imported."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(SRC), os.environ.get("PYTHONPATH"))))}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    if result.returncode != 0:
        raise SystemExit(result.stderr[-2000:])
    modules, top_us = [], 0
    for match in _LINE.finditer(result.stderr):
        cumulative, indent, name = int(match[2]), len(match[3]), match[4]
        modules.append(name)
        if indent == 1:  # a top-level import (its children are indented further)
            top_us += cumulative
    return {"us": top_us, "modules": modules}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7, help="fresh interpreters per case; the fastest is kept")
    args = parser.parse_args()
    report: dict = {"benchmark": "imports", "repeat": args.repeat, "cases": {}}
    for name, code in CASES.items():
        runs = [measure(code) for _ in range(args.repeat)]
        best = min(runs, key=lambda run: run["us"])
        server = sorted({m for m in best["modules"] if any(m == s or m.startswith(s + ".") for s in SERVER_MODULES)})
        report["cases"][name] = {
            "import_ms": round(best["us"] / 1000, 1),
            "modules": len(set(best["modules"])),
            "server_modules_loaded": server,
        }
    print_report(report)


if __name__ == "__main__":
    main()

"""The web page on a large store: server time of its pages, and the browser's time to a big tree.

Fills an embedded store with ``--spans`` spans (default a million) through the real writer:
OTLP requests of GenAI spans (runs of 3 to 25 spans: an agent root, LLM calls with messages,
tool calls, nested steps; 12 agents, 500 users, conversations of 3 runs, one run in 13
failed), spread over 25 days, most of them in the last 7; plus one run of ``--big-run``
spans (10,000 by default) two hours ago. The tables are merged (``OPTIMIZE ... FINAL``, the
state after background merges) and read once into the page cache. Then it starts a real
``tracehouse serve`` on the store (127.0.0.1, free ports; stopped at the end) and times
``--samples`` GET requests of each kind over one keep-alive connection on loopback (wall time
of the request, which is the server's time plus loopback; a ``Server-Timing`` header is
reported too when the app sends one): the runs page (default, filtered, searched, time
ranges, a later page), a typical run's page (tree, timeline), the big run's page (tree,
timeline), a node's detail fragment and, when the tree is paged, the next page of the big
run's tree. Then, in headless Chromium (selenium, Debian's chromium and chromedriver), the
time from navigation until the big run's tree is shown: a script injected before the page's
own records ``performance.now()`` at the first frame after the tree's rows are in the
document. Prints one JSON object.

    .venv/bin/python benchmarks/web.py --store /tmp/webbench
    .venv/bin/python benchmarks/web.py --store /tmp/webbench   # again, on the same data
    .venv/bin/python benchmarks/web.py --spans 20000 --big-run 2000 --samples 5 --browser-samples 1

``--store DIR`` keeps the filled store; a later run with the same ``--store`` reuses it (the
runs' times are where they were when it was filled).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from report import print_report

AGENTS = [f"agent-{i:02d}" for i in range(12)]
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-sonnet-4", "llama-3.1-70b")
CITIES = ("kyoto", "lisbon", "oslo", "lima", "hanoi", "quito", "porto", "accra", "perth", "tunis")
USERS = 500
BIG_RUN = "run-big"
DAY_NS = 86_400 * 10**9
TARGETS = {"server_ms_p95": 200, "browser_tree_ms": 1000}
_READY = re.compile(r"OTLP/gRPC on ([\d.]+:\d+), OTLP/HTTP and API on (http://[\d.:]+)")
_MARKER = "webbench.json"
# The big run: 10,000 nodes of up to 0.2 s (about 17 minutes), one LLM answer in 50 of 12,000 characters.
BIG = {"agent": "long-runner", "big_payload_every": 50, "longest_ns": 2 * 10**8, "failed": False}


# --- filling the store ------------------------------------------------------------------------


class Requests:
    """OTLP ExportTraceServiceRequests of about ``size`` spans each, built span by span."""

    def __init__(self, size: int, sink) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self._new = ExportTraceServiceRequest
        self.size = size
        self.sink = sink
        self.spans = 0
        self._start()

    def _start(self) -> None:
        from tracehouse import semconv

        self.request = self._new()
        rs = self.request.resource_spans.add()
        rs.resource.attributes.add(key=semconv.SERVICE_NAME).value.string_value = "bench-web"
        self.scope = rs.scope_spans.add()
        self.scope.scope.name = "benchmarks.web"
        self.count = 0

    def span(self, trace: bytes, span_id: bytes, parent: bytes, name: str, start: int, end: int, attrs: dict):
        span = self.scope.spans.add()
        span.trace_id, span.span_id, span.parent_span_id, span.name = trace, span_id, parent, name
        span.start_time_unix_nano, span.end_time_unix_nano = start, end
        for key, value in attrs.items():
            kv = span.attributes.add(key=key)
            if isinstance(value, int):
                kv.value.int_value = value
            else:
                kv.value.string_value = value
        self.count += 1
        self.spans += 1
        return span

    def end_run(self) -> None:
        if self.count >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.count:
            self.sink(self.request.SerializeToString())
            self._start()


def _messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def write_run(out: Requests, rng: random.Random, run_id: str, index: int, start: int, nodes: int, **kw) -> None:
    """One run: an agent root and ``nodes`` spans under it (LLM calls, tools, steps holding
    both), each starting after the one before; every 13th run fails in a tool."""
    from tracehouse import semconv

    trace = rng.getrandbits(128).to_bytes(16, "big")
    root = rng.getrandbits(64).to_bytes(8, "big")
    agent = kw.get("agent") or AGENTS[index % len(AGENTS)]
    city = CITIES[index % len(CITIES)]
    failed = kw.get("failed", index % 13 == 0)
    model = MODELS[index % len(MODELS)]
    big_every = kw.get("big_payload_every", 0)
    common = {semconv.TRACEHOUSE_RUN_ID: run_id}
    longest = kw.get("longest_ns", 2 * 10**9)
    t = start + 1_000_000
    parent, step, step_left, llm_calls = root, None, 0, 0
    for i in range(nodes):
        span_id = rng.getrandbits(64).to_bytes(8, "big")
        if step_left == 0:
            if step is not None:
                step.end_time_unix_nano = t
            parent, step = root, None
        if i % 9 == 0 and nodes - i > 3:  # a step holding the next four nodes
            attrs = {**common, semconv.TRACEHOUSE_NODE_TYPE: "step"}
            step = out.span(trace, span_id, root, f"step {i // 9}", t, t + 1, attrs)
            parent, step_left, t = span_id, 4, t + 100_000
            continue
        length = rng.randint(1_000_000, longest)
        if i % 2:
            llm_calls += 1
            answer = f"Here is the plan for {city}, part {i}. " + "z" * 160
            if big_every and llm_calls % big_every == 0:
                answer += " more" * 2400  # a payload of about 12,000 characters
            attrs = {
                **common,
                semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
                semconv.GEN_AI_REQUEST_MODEL: model,
                semconv.GEN_AI_PROVIDER_NAME: "openai",
                semconv.GEN_AI_USAGE_INPUT_TOKENS: rng.randint(100, 2000),
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: rng.randint(10, 500),
                semconv.GEN_AI_INPUT_MESSAGES: _messages("user", f"Plan a trip to {city}. " + "x" * 240),
                semconv.GEN_AI_OUTPUT_MESSAGES: _messages("assistant", answer),
            }
            out.span(trace, span_id, parent, f"chat {model}", t, t + length, attrs)
        else:
            attrs = {
                **common,
                semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
                semconv.GEN_AI_TOOL_NAME: "search",
                semconv.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"q": city, "page": i}),
                semconv.GEN_AI_TOOL_CALL_RESULT: json.dumps(["hotel " + "y" * 80, "museum " + "y" * 80]),
            }
            span = out.span(trace, span_id, parent, "execute_tool search", t, t + length, attrs)
            if failed and i == nodes - 1:
                span.status.code = 2
                span.status.message = "search timed out"
        step_left -= 1
        t += length + 100_000
    if step is not None:
        step.end_time_unix_nano = t
    root_attrs = {
        **common,
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT,
        semconv.GEN_AI_AGENT_NAME: agent,
        semconv.GEN_AI_CONVERSATION_ID: f"conv-{index // 3}",
        semconv.USER_ID: f"user-{index % USERS}",
        semconv.TRACEHOUSE_RUN_INPUT: f"Plan a trip to {city} for {2 + index % 5} days",
        semconv.TRACEHOUSE_RUN_OUTPUT: f"A {2 + index % 5}-day plan for {city}",
    }
    span = out.span(trace, root, b"", f"invoke_agent {agent}", start, t + 1_000_000, root_attrs)
    span.status.code = 2 if failed else 1
    out.end_run()


def fill(directory: str, spans: int, big_run: int, rng: random.Random) -> dict:
    """Write the runs through the writer (spooled OTLP requests, stored in its batches)."""
    from tracehouse.ingest.metrics import Metrics
    from tracehouse.ingest.spool import KIND_TRACES, Spool
    from tracehouse.ingest.writer import RetentionPolicy, Writer
    from tracehouse.store import Store, schema

    store = Store.open(f"chdb://{directory}/store")
    spool = Spool(f"{directory}/fill-spool", max_bytes=64 << 30)
    writer = Writer(store, spool, RetentionPolicy(store, 30), Metrics())

    def drain() -> None:
        while spool.pending_bytes:
            writer.write(spool.read(spool.committed, writer.batch_bytes))

    def sink(body: bytes) -> None:
        spool.append(KIND_TRACES, "", body)
        if spool.pending_bytes > 2 * writer.batch_bytes:
            drain()

    out = Requests(2000, sink)
    now = time.time_ns()
    sizes = []
    while sum(sizes) < spans - big_run:
        sizes.append(rng.randint(2, 24) + 1)  # nodes + the root
    starts = sorted(
        now - (rng.randint(DAY_NS // 24, 7 * DAY_NS) if rng.random() < 0.8 else rng.randint(7 * DAY_NS, 25 * DAY_NS))
        for _ in sizes
    )
    started = time.perf_counter()
    typical = []
    big_start = now - 2 * 3600 * 10**9
    big_written = False
    for index, (start, size) in enumerate(zip(starts, sizes, strict=True)):
        if not big_written and start > big_start:
            out.flush()
            write_run(out, rng, BIG_RUN, index, big_start, big_run - 1, **BIG)
            out.flush()
            big_written = True
        run_id = f"run-{index:07d}"
        write_run(out, rng, run_id, index, start, size - 1)
        if size == 11 and start > now - 7 * DAY_NS:
            typical.append(run_id)
    if not big_written:
        out.flush()
        write_run(out, rng, BIG_RUN, len(sizes), big_start, big_run - 1, **BIG)
    out.flush()
    drain()
    fill_seconds = time.perf_counter() - started
    spool.close()
    shutil.rmtree(f"{directory}/fill-spool")
    for table in (schema.SPANS, schema.RUNS, schema.RUNS_BY_ID, schema.EVENTS, schema.AGENT_DAILY):
        store.client.command(f"OPTIMIZE TABLE {store.table(table)} FINAL")
    counts = {
        "spans": store.query(f"SELECT count() FROM {store.table(schema.SPANS)}")[0][0],
        "runs": store.query(f"SELECT count() FROM {store.table(schema.RUNS)} FINAL")[0][0],
    }
    store.close()
    big_spans = _node_ids(directory)  # some of the big run's span ids, for the node detail
    info = {**counts, "big_run_spans": big_run, "fill_seconds": round(fill_seconds, 1)}
    info |= {"typical_runs": typical[:200], "big_spans": big_spans}
    Path(directory, _MARKER).write_text(json.dumps(info))
    return info


def _node_ids(directory: str) -> list[str]:
    from tracehouse.store import Store
    from tracehouse.store.reads import ReadService

    store = Store.open(f"chdb://{directory}/store")
    try:
        nodes = ReadService(store, "default").run_tree(BIG_RUN).nodes
        return [n.span_id for n in nodes[:: max(1, len(nodes) // 200)]]
    finally:
        store.close()


def _read_files(directory: str) -> int:
    """Read every file of the store once (see benchmarks/queries.py: this VM evicts idle files)."""
    total = 0
    for root, _, names in os.walk(directory):
        for name in names:
            with contextlib.suppress(OSError), open(os.path.join(root, name), "rb") as f:
                while chunk := f.read(1 << 20):
                    total += len(chunk)
    return total


# --- timing -----------------------------------------------------------------------------------


def _quantiles(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[math.ceil(0.95 * len(times)) - 1], 1),  # nearest rank
        "max_ms": round(times[-1], 1),
    }


def _server_timing(header: str | None) -> float | None:
    """The total of a Server-Timing header's durations (``name;dur=12.3, ...``), or None."""
    if not header:
        return None
    found = re.findall(r"dur=([0-9.]+)", header)
    return sum(float(x) for x in found) if found else None


class Http:
    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def get(self, path: str, headers: dict | None = None) -> tuple[float, float | None, int, bytes]:
        started = time.perf_counter()
        try:
            self.conn.request("GET", path, headers=headers or {})
            response = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            self.conn.request("GET", path, headers=headers or {})
            response = self.conn.getresponse()
        body = response.read()
        wall = (time.perf_counter() - started) * 1000
        return wall, _server_timing(response.getheader("Server-Timing")), response.status, body


def time_pages(base: str, info: dict, samples: int, rng: random.Random) -> dict:
    client = Http(base)
    typical = info["typical_runs"]
    spans = info["big_spans"]
    big = f"/runs/{BIG_RUN}"
    first = client.get(big)[3].decode()
    more = re.search(r'class="show-more"[^>]*hx-get="([^"]+)"', first) or re.search(
        r'class="show-more" href="([^"]+)"', first
    )
    kinds = {
        "runs": lambda i: "/",
        "runs_agent": lambda i: f"/?agent={AGENTS[i % len(AGENTS)]}",
        "runs_failed": lambda i: "/?status=failed",
        "runs_search": lambda i: f"/?q={CITIES[i % len(CITIES)]}",
        "runs_last_24h": lambda i: "/?range=24h",
        "runs_last_30d": lambda i: "/?range=30d",
        "runs_page_5": lambda i: "/?page=5",
        "runs_section_htmx": lambda i: "/",
        "run_typical_tree": lambda i: f"/runs/{typical[i % len(typical)]}",
        "run_typical_timeline": lambda i: f"/runs/{typical[i % len(typical)]}?view=timeline",
        "run_big_tree": lambda i: big,
        "run_big_timeline": lambda i: f"{big}?view=timeline",
        "node_detail": lambda i: f"{big}/nodes/{spans[i % len(spans)]}?view=tree",
    }
    if more:
        kinds["run_big_tree_next_page"] = lambda i: more.group(1).replace("&amp;", "&")
    results = {}
    sizes = {}
    for kind, path in kinds.items():
        headers = {"HX-Request": "true"} if kind in ("runs_section_htmx", "run_big_tree_next_page") else None
        client.get(path(0), headers)  # one untimed request: the first of a kind plans its queries
        walls, timings = [], []
        for i in range(samples):
            wall, timing, status, body = client.get(path(rng.randrange(1 << 30)), headers)
            if status != 200:
                raise SystemExit(f"GET {path(i)}: {status}")
            walls.append(wall)
            if timing is not None:
                timings.append(timing)
            sizes[kind] = len(body)
        results[kind] = {**_quantiles(walls), "bytes": sizes[kind]}
        if timings:
            results[kind]["server_timing"] = _quantiles(timings)
    rows = len(re.findall(r"data-node-row", first))
    return {"pages": results, "big_tree_rows_on_first_page": rows, "big_tree_paged": bool(more)}


# Injected before any of the page's own scripts: the time of the first frame drawn after the
# tree's rows are in the document (the tree is server-rendered, so it is there once parsed).
_OBSERVER = """
(function () {
  function shown() {
    return document.querySelector("#run-nodes [data-node-row]") && document.readyState !== "loading";
  }
  function check() {
    if (window.__treeShown === undefined && shown()) {
      window.__treeParsed = performance.now();
      requestAnimationFrame(function () {
        setTimeout(function () { window.__treeShown = performance.now(); }, 0);
      });
      return true;
    }
    return false;
  }
  document.addEventListener("readystatechange", check);
  var observer = new MutationObserver(function () { if (check()) observer.disconnect(); });
  observer.observe(document, { childList: true, subtree: true });
})();
"""


def time_browser(base: str, samples: int) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from browser_helpers import missing, start_chromium

    why = missing()
    if why:
        return {"skipped": why}
    profile = tempfile.mkdtemp(prefix="tracehouse-webbench-chromium-")
    driver = start_chromium(profile)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _OBSERVER})
        runs = []
        for i in range(samples + 1):
            driver.get("about:blank")
            driver.get(f"{base}/runs/{BIG_RUN}")  # returns at the load event
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                found = driver.execute_script(
                    "const n = performance.getEntriesByType('navigation')[0];"
                    "const p = performance.getEntriesByName('first-contentful-paint')[0];"
                    "return window.__treeShown === undefined ? null : {"
                    "shown: window.__treeShown, parsed: window.__treeParsed,"
                    "ttfb: n.responseStart, response_end: n.responseEnd,"
                    "dom_content_loaded: n.domContentLoadedEventEnd, load: n.loadEventEnd,"
                    "fcp: p ? p.startTime : null,"
                    "rows: document.querySelectorAll('#run-nodes [data-node-row]').length}"
                )
                if found:
                    break
                time.sleep(0.05)
            else:
                raise SystemExit("the big run's tree was not shown within 60 s")
            if i:  # the first load warms the browser's cache of the page's scripts and styles
                runs.append(found)
        result = {
            key: _quantiles([r[key] for r in runs if r[key] is not None])
            for key in ("shown", "ttfb", "response_end", "dom_content_loaded", "load", "fcp")
        }
        result["rows_shown"] = runs[-1]["rows"]
        result["samples"] = len(runs)
        return result
    finally:
        driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000, help="spans in the store, the big run's included")
    parser.add_argument("--big-run", type=int, default=10_000, help="spans of the one big run")
    parser.add_argument("--samples", type=int, default=100, help="timed requests of each kind")
    parser.add_argument("--browser-samples", type=int, default=10, help="timed loads of the big run in Chromium")
    parser.add_argument("--store", help="directory to fill, or to reuse when it was filled before (default: a new one)")
    args = parser.parse_args()

    rng = random.Random(17)
    directory = args.store or tempfile.mkdtemp(prefix="tracehouse-webbench-")
    marker = Path(directory, _MARKER)
    reused = marker.exists()
    info = json.loads(marker.read_text()) if reused else fill(directory, args.spans, args.big_run, rng)
    warmed = _read_files(directory)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tracehouse.cli",
            "serve",
            "--store",
            f"chdb://{directory}/store",
            "--host",
            "127.0.0.1",
            "--grpc-port",
            "0",
            "--http-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        ready = None
        for line in server.stdout:
            ready = _READY.search(line)
            if ready:
                break
        if not ready:
            raise SystemExit("the server did not start")
        base = ready.group(2)
        load_before = os.getloadavg()[0]
        pages = time_pages(base, info, args.samples, rng)
        browser = time_browser(base, args.browser_samples) if args.browser_samples else {"skipped": "not asked"}
    finally:
        server.terminate()
        server.wait(120)
    p95 = {kind: v["p95_ms"] for kind, v in pages["pages"].items()}
    print_report(
        {
            "benchmark": "web",
            "spans": info["spans"],
            "runs": info["runs"],
            "big_run_spans": info["big_run_spans"],
            "fill_seconds": info["fill_seconds"],
            "reused_store": reused,
            "store_bytes_read_before_timing": warmed,
            "samples": args.samples,
            # The machine's 1-minute load average when the timing began and when it ended: other
            # work on the same cores slows every figure.
            "load_average": {"before": round(load_before, 1), "after": round(os.getloadavg()[0], 1)},
            **pages,
            "browser_big_tree": browser,
            "targets": TARGETS,
            "met": {
                "server_ms_p95": all(v <= TARGETS["server_ms_p95"] for v in p95.values()),
                "browser_tree_ms": "shown" in browser and browser["shown"]["p95_ms"] <= TARGETS["browser_tree_ms"],
            },
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

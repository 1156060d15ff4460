"""Sustained OTLP load against a real `tracehouse serve` on the embedded store.

Several client processes send requests of 1,000 GenAI spans of about 1 KB each (a run root,
LLM calls with tokens and messages, tool calls), over gRPC or HTTP/protobuf, for a fixed time.
Every request carries new trace and span ids. Reports spans/s acknowledged (durable in the
spool), spans/s stored (visible in ClickHouse), request latency p50/p99, ingest-to-visible lag
from the server's own histogram, and the server's peak RSS. Prints one JSON object.

    .venv/bin/python benchmarks/ingest.py --transport grpc --clients 4 --seconds 30
    .venv/bin/python benchmarks/ingest.py --transport http --clients 4 --seconds 30
    .venv/bin/python benchmarks/ingest.py --transport grpc --clients 2 --seconds 30 --rate 10000

With ``--rate`` the clients offer a fixed load instead, which shows the ingest-to-visible lag
at a load the writer keeps up with.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from report import print_report

SPANS_PER_REQUEST = 1000


def build_request(seed: int):
    """One ExportTraceServiceRequest of SPANS_PER_REQUEST spans: 100 runs of 10 spans."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from tracehouse import semconv

    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key=semconv.SERVICE_NAME).value.string_value = "bench-agent"
    ss = rs.scope_spans.add()
    ss.scope.name = "benchmarks.ingest"
    now = time.time_ns()
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "x" * 300}]}])
    for run in range(SPANS_PER_REQUEST // 10):
        root_id = rng.getrandbits(64).to_bytes(8, "big")
        trace = rng.getrandbits(128).to_bytes(16, "big")
        for i in range(10):
            span = ss.spans.add()
            span.trace_id = trace
            span.span_id = root_id if i == 0 else rng.getrandbits(64).to_bytes(8, "big")
            span.parent_span_id = b"" if i == 0 else root_id
            span.start_time_unix_nano = now + i * 1_000_000
            span.end_time_unix_nano = now + (i + 1) * 1_000_000 if i else now + 20_000_000
            span.kind = 1 if i != 5 else 3

            def put(key: str, value, attrs=span.attributes) -> None:
                kv = attrs.add(key=key)
                if isinstance(value, int):
                    kv.value.int_value = value
                else:
                    kv.value.string_value = value

            if i == 0:
                span.name = "invoke_agent planner"
                put(semconv.GEN_AI_OPERATION_NAME, semconv.OP_INVOKE_AGENT)
                put(semconv.GEN_AI_AGENT_NAME, "planner")
                put(semconv.GEN_AI_CONVERSATION_ID, f"conv-{run}")
            elif i % 3 == 1:
                span.name = "chat gpt-4o-mini"
                put(semconv.GEN_AI_OPERATION_NAME, semconv.OP_CHAT)
                put(semconv.GEN_AI_REQUEST_MODEL, "gpt-4o-mini")
                put(semconv.GEN_AI_PROVIDER_NAME, "openai")
                put(semconv.GEN_AI_USAGE_INPUT_TOKENS, rng.randint(100, 2000))
                put(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, rng.randint(10, 500))
                put(semconv.GEN_AI_INPUT_MESSAGES, messages)
            else:
                span.name = "execute_tool search"
                put(semconv.GEN_AI_OPERATION_NAME, semconv.OP_EXECUTE_TOOL)
                put(semconv.GEN_AI_TOOL_NAME, "search")
                put(semconv.GEN_AI_TOOL_CALL_ARGUMENTS, '{"q": "' + "y" * 400 + '"}')
    return request


def renew_ids(request, rng: random.Random) -> None:
    """New trace and span ids, keeping each run's parent links; the runs start now (a request
    carries runs that just ended, as an exporter's would)."""
    spans = request.resource_spans[0].scope_spans[0].spans
    shift = time.time_ns() - spans[0].start_time_unix_nano
    for span in spans:
        span.start_time_unix_nano += shift
        span.end_time_unix_nano += shift
    for start in range(0, len(spans), 10):
        trace = rng.getrandbits(128).to_bytes(16, "big")
        root = rng.getrandbits(64).to_bytes(8, "big")
        for i in range(start, start + 10):
            spans[i].trace_id = trace
            spans[i].span_id = root if i == start else rng.getrandbits(64).to_bytes(8, "big")
            if i != start:
                spans[i].parent_span_id = root


def client(transport: str, target: str, seconds: float, seed: int, out: mp.Queue, rate: float = 0) -> None:
    """Send for ``seconds``: as fast as acknowledgements come, or ``rate`` spans/s."""
    rng = random.Random(seed)
    request = build_request(seed)
    latencies, spans, refused = [], 0, 0
    if transport == "grpc":
        import grpc

        channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)])
        send = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")

        def export(body: bytes) -> bool:
            try:
                send(body, timeout=30)
                return True
            except grpc.RpcError:
                return False
    else:
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(target)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

        def export(body: bytes) -> bool:
            conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
            response = conn.getresponse()
            response.read()
            return response.status == 200

    start = time.monotonic()
    deadline = start + seconds
    sent = 0
    while time.monotonic() < deadline:
        if rate:
            pause = start + sent * SPANS_PER_REQUEST / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        sent += 1
        renew_ids(request, rng)
        body = request.SerializeToString()
        t0 = time.perf_counter()
        ok = export(body)
        latencies.append(time.perf_counter() - t0)
        if ok:
            spans += SPANS_PER_REQUEST
        else:
            refused += 1
            time.sleep(0.5)
    out.put({"spans": spans, "latencies": latencies, "refused": refused, "bytes": len(body)})


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _histogram_quantile(text: str, name: str, q: float) -> float:
    buckets = [
        (float(le), float(v))
        for le, v in re.findall(rf'^{name}_bucket{{le="([^"]+)"}} ([0-9.e+-]+)$', text, re.MULTILINE)
    ]
    total = buckets[-1][1] if buckets else 0
    for le, count in buckets:
        if total and count >= q * total:
            return le
    return float("inf")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transport", choices=["grpc", "http"], default="grpc")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument(
        "--rate", type=float, default=0, help="offered load in spans/s over all clients (default: as fast as acked)"
    )
    parser.add_argument(
        "--normalize", choices=["auto", "engine", "python"], default="auto", help="the server's --normalize"
    )
    parser.add_argument("--batch-interval", type=float, default=0.5, help="the server's --batch-interval")
    args = parser.parse_args()

    data = tempfile.mkdtemp(prefix="tracehouse-ingest-")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tracehouse.cli",
            "serve",
            "--store",
            f"chdb://{data}/store",
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            "--spool-max-mb",
            "4096",
            "--normalize",
            args.normalize,
            "--batch-interval",
            str(args.batch_interval),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ready = None
    for line in server.stdout:
        ready = re.search(r"OTLP/gRPC on ([\d.]+:\d+), OTLP/HTTP and API on (http://[\d.:]+)", line)
        if ready:
            break
    if not ready:
        raise SystemExit("the server did not start")
    grpc_target, http_url = ready.group(1), ready.group(2)
    target = grpc_target if args.transport == "grpc" else http_url

    queue: mp.Queue = mp.Queue()
    procs = [
        mp.Process(target=client, args=(args.transport, target, args.seconds, i, queue, args.rate / args.clients))
        for i in range(args.clients)
    ]
    started = time.monotonic()
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    sending = time.monotonic() - started
    acked = sum(r["spans"] for r in results)
    clients_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    clients_cpu = clients_cpu.ru_utime + clients_cpu.ru_stime  # the clients only: the server still runs
    server_cpu_sending = _cpu_seconds(server.pid)
    metrics = urllib.request.urlopen(f"{http_url}/metrics").read().decode()
    pending_at_end = _metric(metrics, "tracehouse_spool_pending_records") * SPANS_PER_REQUEST
    # Wait until the writer has stored everything acknowledged.
    while True:
        metrics = urllib.request.urlopen(f"{http_url}/metrics").read().decode()
        if _metric(metrics, "tracehouse_spool_pending_bytes") == 0:
            break
        time.sleep(0.2)
    stored_all = time.monotonic() - started
    server_cpu = _cpu_seconds(server.pid)
    with open(f"/proc/{server.pid}/status") as f:
        peak_rss = int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) // 1024
    server.terminate()
    server.wait(120)
    latencies = sorted(x for r in results for x in r["latencies"])
    print_report(
        {
            "benchmark": "ingest",
            "transport": args.transport,
            "clients": args.clients,
            "normalize": args.normalize,
            "batch_interval_s": args.batch_interval,
            "offered_spans_per_s": args.rate or "as fast as acknowledged",
            "spans_per_request": SPANS_PER_REQUEST,
            "request_bytes": results[0]["bytes"],
            "seconds_sending": round(sending, 1),
            "spans_acknowledged": acked,
            "acknowledged_spans_per_s": round(acked / sending),
            "stored_spans_per_s": round(acked / stored_all),
            "seconds_until_all_stored": round(stored_all, 1),
            "request_ms_p50": round(statistics.median(latencies) * 1000, 1),
            "request_ms_p99": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 1),
            "lag_s_p50_bucket": _histogram_quantile(metrics, "tracehouse_ingest_lag_seconds", 0.5),
            "lag_s_p99_bucket": _histogram_quantile(metrics, "tracehouse_ingest_lag_seconds", 0.99),
            "batch_s_p50_bucket": _histogram_quantile(metrics, "tracehouse_insert_seconds", 0.5),
            "batch_s_p99_bucket": _histogram_quantile(metrics, "tracehouse_insert_seconds", 0.99),
            "batches": round(_metric(metrics, "tracehouse_insert_seconds_count")),
            "refused_requests": sum(r["refused"] for r in results),
            # CPU per span: what 2 cores allow is 2,000,000 / spans per second (20 us at 100k/s).
            "clients_cpu_us_per_span": round(clients_cpu / acked * 1e6, 1),
            "server_cpu_us_per_span": round(server_cpu / acked * 1e6, 1),
            # After sending, the server only stores the backlog: the writer's own cost.
            "backlog_after_sending_spans": round(pending_at_end),
            "writer_cpu_us_per_span_on_backlog": round((server_cpu - server_cpu_sending) / pending_at_end * 1e6, 1)
            if pending_at_end
            else None,
            "server_peak_rss_mib": peak_rss,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

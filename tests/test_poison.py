"""What one careless client sends cannot stop storing for everyone: end to end against
`tracehouse serve` on the embedded store.

Each poison below is followed by a good run, which must become visible through the API within
seconds: proof that the writer was not stalled by what came before it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import grpc
import pytest
from conftest import fill
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from serve_helpers import Server, unused_port
from test_serve import EXPORT, JSON, PROTOBUF, agent_run, otlp_json, post

from tracehouse import semconv
from tracehouse.ingest.quarantine import Quarantine
from tracehouse.ingest.spool import KIND_LOGS, KIND_TRACES, Record, Spool

DAY = 86_400 * 10**9
VISIBLE_WITHIN = 30.0  # seconds; the writer stores a batch about every half second


def get(url: str) -> tuple[int, dict | list | str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def call(method: str, url: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def run_ids(srv: Server) -> set[str]:
    status, items = get(f"{srv.http}/api/v1/agents/history?limit=1000")
    return {item["run_id"] for item in items} if status == 200 else set()


def wait_visible(srv: Server, *runs: str, timeout: float = VISIBLE_WITHIN) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(runs) <= run_ids(srv):
            return
        time.sleep(0.2)
    raise AssertionError(f"runs {sorted(set(runs) - run_ids(srv))} not visible after {timeout}s")


def send_good_run(srv: Server, run_id: str) -> None:
    status, _, body = post(f"{srv.http}/v1/traces", encode_spans(agent_run(run_id)).SerializeToString(), PROTOBUF)
    assert status == 200 and not ExportTraceServiceResponse.FromString(body).HasField("partial_success")
    wait_visible(srv, run_id)


def spans_at(*starts: int) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for n, start in enumerate(starts, 1):
        span = spans.add(trace_id=n.to_bytes(16, "big"), span_id=n.to_bytes(8, "big"), name=f"at-{start}")
        span.start_time_unix_nano, span.end_time_unix_nano = start, min(start + 1000, 2**64 - 1)
    return request


def metric(srv: Server, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"{srv.http}/metrics", timeout=10) as response:
        text = response.read().decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head == (f"{name}{{{wanted}}}" if labels else name):
            return float(value)
    return 0.0


def test_a_request_whose_spans_start_on_200_days_is_stored_and_blocks_nothing(server):
    srv = server()
    now = time.time_ns()
    request = spans_at(*(now - (n + 1) * DAY for n in range(200)))  # an import of old data, in one request
    status, _, body = post(f"{srv.http}/v1/traces", request.SerializeToString(), PROTOBUF)
    partial = ExportTraceServiceResponse.FromString(body).partial_success
    assert status == 200 and partial.rejected_spans == 100  # the latest 100 days are taken
    assert "on 200 different days, over the limit of 100 a request" in partial.error_message
    # Sent day by day, as the message asks, the rest is taken too.
    for n in range(100, 200, 25):
        status, _, body = post(
            f"{srv.http}/v1/traces",
            spans_at(*(now - (m + 1) * DAY for m in range(n, n + 25))).SerializeToString(),
            PROTOBUF,
        )
        assert status == 200 and not ExportTraceServiceResponse.FromString(body).HasField("partial_success")
    send_good_run(srv, "run-after-200-days")
    assert metric(srv, "tracehouse_store_write_errors_total") == 0
    assert get(f"{srv.http}/readyz")[0] == 200


def test_spans_from_a_wrong_clock_are_rejected_with_a_message_and_counted(server):
    srv = server()
    now = time.time_ns()
    request = encode_spans(agent_run("run-mixed-clocks"))
    bad = spans_at(now + 173 * DAY, 2**64 - 2000, now - 4000 * DAY).resource_spans[0].scope_spans[0].spans
    request.resource_spans[0].scope_spans[0].spans.extend(bad)
    status, _, body = post(f"{srv.http}/v1/traces", request.SerializeToString(), PROTOBUF)
    partial = ExportTraceServiceResponse.FromString(body).partial_success
    assert status == 200 and partial.rejected_spans == 3
    assert "span starts 173 days in the future" in partial.error_message
    assert "check the sending host's clock" in partial.error_message
    assert "older than any retention keeps (3650 days)" in partial.error_message
    # The same over JSON and gRPC.
    status, _, body = post(f"{srv.http}/v1/traces", otlp_json(spans_at(now + 3 * DAY)), JSON)
    assert status == 200 and json.loads(body)["partialSuccess"]["rejectedSpans"] == "1"
    with grpc.insecure_channel(srv.grpc) as channel:
        reply = ExportTraceServiceResponse.FromString(
            channel.unary_unary(EXPORT)(spans_at(2**64 - 2).SerializeToString(), timeout=10)
        )
    assert reply.partial_success.rejected_spans == 1 and "in the future" in reply.partial_success.error_message
    assert metric(srv, "tracehouse_items_rejected_total", reason="future", signal="traces") == 4
    assert metric(srv, "tracehouse_items_rejected_total", reason="too_old", signal="traces") == 1
    wait_visible(srv, "run-mixed-clocks")  # the good spans of the request were kept
    send_good_run(srv, "run-after-clocks")


def _nested_json(depth: int) -> bytes:
    """A span whose attribute value is a kvlist ``depth`` levels deep (written out by hand:
    Python's own JSON encoder cannot nest that far)."""
    now = time.time_ns()
    value = '{"kvlistValue": {"values": [{"key": "k", "value": ' * depth + '{"stringValue": "bottom"}' + "}]}}" * depth
    span = (
        f'{{"traceId": "{"01" * 16}", "spanId": "{"02" * 8}", "name": "deep", "startTimeUnixNano": "{now}", '
        f'"endTimeUnixNano": "{now}", "attributes": [{{"key": "deep", "value": {value}}}]}}'
    )
    return f'{{"resourceSpans": [{{"scopeSpans": [{{"spans": [{span}]}}]}}]}}'.encode()


def test_deeply_nested_values_and_huge_attribute_counts_are_client_errors(server):
    srv = server("--max-attributes", "100", "--max-value-kb", "1")
    for depth in (150, 400, 3000):
        status, _, body = post(f"{srv.http}/v1/traces", _nested_json(depth), JSON)
        assert status == 400, (depth, status, body[:200])
        assert json.loads(body)["code"] == 3
    # Many attributes and a long value: kept, limited, and said so.
    request = spans_at(time.time_ns())
    span = request.resource_spans[0].scope_spans[0].spans[0]
    for n in range(5000):
        span.attributes.add(key=f"a{n}").value.int_value = n
    span.attributes[0].value.string_value = "x" * 5000
    status, _, body = post(f"{srv.http}/v1/traces", request.SerializeToString(), PROTOBUF)
    partial = ExportTraceServiceResponse.FromString(body).partial_success
    assert status == 200 and partial.rejected_spans == 0
    assert "5000 attributes, over the limit of 100: 4900 dropped" in partial.error_message
    assert "over the limit of 1024: truncated" in partial.error_message
    assert metric(srv, "tracehouse_items_limited_total", limit="attributes", signal="traces") == 1
    send_good_run(srv, "run-after-big-requests")


def test_meaningless_token_counts_are_stored_but_never_summed(server):
    srv = server()
    spans = agent_run("run-bad-numbers", tokens=(-7, 30))
    request = encode_spans(spans)
    chat = next(s for s in request.resource_spans[0].scope_spans[0].spans if s.name.startswith("chat"))
    for kv in chat.attributes:
        if kv.key == semconv.GEN_AI_USAGE_OUTPUT_TOKENS:
            kv.value.double_value = 1e30
    for value in (float("nan"), float("inf")):
        extra = chat.attributes.add(key=semconv.TRACEHOUSE_COST_USD)
        extra.value.double_value = value
    status, _, _ = post(f"{srv.http}/v1/traces", request.SerializeToString(), PROTOBUF)
    assert status == 200
    wait_visible(srv, "run-bad-numbers")
    item = next(i for i in get(f"{srv.http}/api/v1/agents/history")[1] if i["run_id"] == "run-bad-numbers")
    assert item["tokens_used"] == 0 and 0 <= item["cost_cents"] < 1
    send_good_run(srv, "run-after-bad-numbers")


def _spool_dir(srv_or_dir) -> str:
    store_dir = srv_or_dir if isinstance(srv_or_dir, str) else srv_or_dir.store_dir
    return store_dir.rstrip("/") + "-spool"


def test_a_request_the_store_refuses_is_quarantined_and_storing_goes_on(server, tmp_path):
    store_dir = str(tmp_path / "data")
    # What the writer finds in the spool at start: a good run, two requests it can never read
    # (as a spool written by another version could hold), another good run.
    spool = Spool(_spool_dir(store_dir))
    spool.append(KIND_TRACES, "", encode_spans(agent_run("run-before-poison")).SerializeToString())
    spool.append(KIND_TRACES, "acme", b"\x0a\xff\xff\xff\x0fnot an export request")
    spool.append(KIND_LOGS, "", b"\x0a\x05junk!")
    spool.append(KIND_TRACES, "", encode_spans(agent_run("run-after-poison")).SerializeToString())
    spool.close()
    srv = server(store_dir=store_dir)
    wait_visible(srv, "run-before-poison", "run-after-poison")
    status, entries = get(f"{srv.http}/api/v1/quarantine")
    assert status == 200 and sorted((e["signal"], e["tenant"]) for e in entries) == [("logs", ""), ("traces", "acme")]
    assert all("is not a protobuf OTLP" in e["error"] for e in entries), entries
    assert metric(srv, "tracehouse_quarantine_records") == 2
    assert metric(srv, "tracehouse_records_quarantined_total", signal="traces") == 1
    status, ready = get(f"{srv.http}/readyz")
    assert status == 200 and ready["quarantined"] == 2 and "quarantined" in ready["warnings"][0]
    # A tenant sees its own only (on a server without keys, by ?tenant=).
    assert [e["tenant"] for e in get(f"{srv.http}/api/v1/quarantine?tenant=acme")[1]] == ["acme"]
    # The CLI lists and drops them.
    cli = [sys.executable, "-m", "tracehouse.cli", "quarantine"]
    listed = subprocess.run([*cli, "list", "--url", srv.http], capture_output=True, text=True, timeout=60)
    assert (
        listed.returncode == 0
        and all(e["id"] in listed.stdout for e in entries)
        and "is not a protobuf OTLP" in listed.stdout
    )
    dropped = subprocess.run(
        [*cli, "drop", entries[0]["id"], "--url", srv.http], capture_output=True, text=True, timeout=60
    )
    assert dropped.returncode == 0 and f"dropped: {entries[0]['id']}" in dropped.stdout
    assert [e["id"] for e in get(f"{srv.http}/api/v1/quarantine")[1]] == [entries[1]["id"]]
    assert call("DELETE", f"{srv.http}/api/v1/quarantine/{entries[0]['id']}")[0] == 404
    send_good_run(srv, "run-after-quarantine")


def test_quarantined_requests_are_retried_into_the_store(server, tmp_path):
    store_dir = str(tmp_path / "data")
    os.makedirs(_spool_dir(store_dir))
    # Entries an earlier version quarantined (the store refused them then; not any more).
    quarantine = Quarantine(_spool_dir(store_dir))
    for n, run_id in enumerate(("run-retried-by-api", "run-retried-offline")):
        payload = encode_spans(agent_run(run_id)).SerializeToString()
        quarantine.add(Record(n * 1000, n * 1000 + 10, KIND_TRACES, "", payload, time.time_ns()), "refused back then")
    first, second = quarantine.entries()
    # With no server running, the CLI works on the spool directory: the retry goes into the spool.
    offline = subprocess.run(
        [sys.executable, "-m", "tracehouse.cli", "quarantine", "retry", second.id, "--store", f"chdb://{store_dir}"]
        + ["--url", f"http://127.0.0.1:{unused_port()}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert offline.returncode == 0, offline.stderr
    assert f"retried (back in the spool): {second.id}" in offline.stdout
    srv = server(store_dir=store_dir)
    wait_visible(srv, "run-retried-offline")
    status, entry = call("POST", f"{srv.http}/api/v1/quarantine/{first.id}/retry")
    assert status == 200 and entry["id"] == first.id
    wait_visible(srv, "run-retried-by-api")
    assert get(f"{srv.http}/api/v1/quarantine")[1] == []


def test_a_full_disk_asks_clients_to_retry_and_ingest_resumes_by_itself(server, small_disk):
    srv = server("--spool", str(small_disk / "spool"))
    filler = fill(small_disk)  # before anything is stored, so no stored record's space can be reclaimed
    body = encode_spans(agent_run("run-on-full-disk")).SerializeToString()
    status, headers, _ = post(f"{srv.http}/v1/traces", body, PROTOBUF)
    assert status == 503 and int(headers["retry-after"]) > 0
    with grpc.insecure_channel(srv.grpc) as channel, pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(EXPORT)(body, timeout=10)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    os.remove(filler)  # space returns: the next try is taken, with nothing restarted
    send_good_run(srv, "run-on-full-disk")
    send_good_run(srv, "run-after-full-disk")

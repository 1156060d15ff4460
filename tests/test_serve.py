"""`tracehouse serve` end to end: official OTel exporters and raw HTTP/gRPC against a real server.

Each test starts its own server subprocess on free loopback ports. The store belongs to the
server, so results are read from it after the server has stopped (which also proves that a
clean stop stores everything acknowledged).
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import Status, StatusCode
from otel_helpers import Recorder
from serve_helpers import Server, dump_store, unused_port

from tracehouse import pricing, semconv

PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def agent_run(run_id: str, *, model: str = "gpt-4o-mini", tokens: tuple[int, int] = (120, 30), fail: bool = False):
    """A small agent run, recorded by the OTel SDK with GenAI and tracehouse attributes."""
    rec = Recorder(service="e2e-agent")
    common = {semconv.TRACEHOUSE_RUN_ID: run_id}
    with rec.span(
        "invoke_agent planner",
        **common,
        **{
            semconv.GEN_AI_OPERATION_NAME: "invoke_agent",
            semconv.GEN_AI_AGENT_NAME: "planner",
            semconv.TRACEHOUSE_RUN_INPUT: f"question {run_id}",
        },
    ):
        with rec.span(
            f"chat {model}",
            **common,
            **{
                semconv.GEN_AI_OPERATION_NAME: "chat",
                semconv.GEN_AI_REQUEST_MODEL: model,
                semconv.GEN_AI_USAGE_INPUT_TOKENS: tokens[0],
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: tokens[1],
            },
        ):
            pass
        with rec.span(
            "execute_tool search",
            **common,
            **{semconv.GEN_AI_OPERATION_NAME: "execute_tool", semconv.GEN_AI_TOOL_NAME: "search"},
        ) as tool:
            if fail:
                tool.set_status(Status(StatusCode.ERROR, "boom"))
    return rec.exporter.get_finished_spans()


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as the specification writes it: hex ids, lowerCamelCase, 64-bit ints as strings."""
    document = json_format.MessageToDict(request)

    def hexify(node):
        if isinstance(node, dict):
            return {
                k: (base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") else hexify(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [hexify(v) for v in node]
        return node

    return json.dumps(hexify(document)).encode()


def post(url: str, body: bytes, headers: dict, chunked: bool = False) -> tuple[int, dict, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request(
        "POST",
        parts.path,
        body=iter([body[: len(body) // 2], body[len(body) // 2 :]]) if chunked else body,
        headers=headers,
        encode_chunked=chunked,
    )
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def _run_rows(store_dir: str) -> dict[str, dict]:
    cols = [
        "RunId",
        "Tenant",
        "Status",
        "NodeCount",
        "LlmCalls",
        "InputTokens",
        "OutputTokens",
        "CostUsd",
        "AgentName",
        "InputPreview",
    ]
    rows = dump_store(store_dir, f"SELECT {', '.join(cols)} FROM tracehouse.runs FINAL")
    return {row[0]: dict(zip(cols, row, strict=True)) for row in rows}


def test_official_exporters_deliver_runs_that_read_back_right(server):
    srv = server()
    grpc_spans, http_spans, json_spans = (
        agent_run("run-grpc"),
        agent_run("run-http", tokens=(1000, 10)),
        agent_run("run-json", model="claude-sonnet-4", fail=True),
    )
    grpc_exporter = GrpcExporter(endpoint=srv.grpc, insecure=True)
    assert grpc_exporter.export(grpc_spans) is SpanExportResult.SUCCESS
    assert grpc_exporter.export(grpc_spans) is SpanExportResult.SUCCESS  # a retry: delivered twice
    http_exporter = HttpExporter(endpoint=f"{srv.http}/v1/traces", compression=Compression.Gzip)
    assert http_exporter.export(http_spans) is SpanExportResult.SUCCESS
    status, headers, body = post(f"{srv.http}/v1/traces", otlp_json(encode_spans(json_spans)), JSON)
    assert (status, headers["content-type"], json.loads(body)) == (200, "application/json", {})
    grpc_exporter.shutdown()
    http_exporter.shutdown()

    assert "everything acknowledged is stored" in srv.stop()
    runs = _run_rows(srv.store_dir)
    assert set(runs) == {"run-grpc", "run-http", "run-json"}
    for run_id, (tokens_in, tokens_out), model in (
        ("run-grpc", (120, 30), "gpt-4o-mini"),
        ("run-http", (1000, 10), "gpt-4o-mini"),
        ("run-json", (120, 30), "claude-sonnet-4"),
    ):
        run = runs[run_id]
        assert (run["NodeCount"], run["LlmCalls"], run["InputTokens"], run["OutputTokens"]) == (
            2,
            1,
            tokens_in,
            tokens_out,
        )
        assert run["CostUsd"] == pytest.approx(pricing.cost_usd(model, tokens_in, tokens_out))
        assert (run["AgentName"], run["InputPreview"], run["Tenant"]) == ("planner", f"question {run_id}", "default")
    assert runs["run-grpc"]["Status"] == "completed" and runs["run-json"]["Status"] == "completed"
    spans = dump_store(
        srv.store_dir,
        "SELECT RunId, count(), uniqExact(SpanId) FROM tracehouse.otel_traces FINAL GROUP BY RunId ORDER BY RunId",
    )
    assert spans == [["run-grpc", 3, 3], ["run-http", 3, 3], ["run-json", 3, 3]]  # the retry counted once
    failed = dump_store(
        srv.store_dir,
        "SELECT SpanName, Status, StatusMessage FROM tracehouse.otel_traces FINAL "
        "WHERE RunId = 'run-json' AND Status = 'failed'",
    )
    assert failed == [["execute_tool search", "failed", "boom"]]


def test_http_follows_the_otlp_rules(server):
    srv = server("--max-request-mb", "1")
    url = f"{srv.http}/v1/traces"
    request = encode_spans(agent_run("run-rules"))
    # Empty requests succeed, in the request's own content type.
    assert post(url, b"", PROTOBUF)[0::2] == (200, b"")
    assert post(url, b"{}", JSON)[0::2] == (200, b"{}")
    # Malformed bodies: 400 with a google.rpc.Status body, protobuf or JSON as the request was.
    status, headers, body = post(url, b"\xff\xfenot protobuf", PROTOBUF)
    assert status == 400 and headers["content-type"] == "application/x-protobuf"
    assert status_pb2.Status.FromString(body).code == 3
    status, _, body = post(url, b'{"resourceSpans": 7}', JSON)
    assert status == 400 and json.loads(body)["code"] == 3
    assert post(url, b"x", {"Content-Type": "text/plain"})[0] == 415
    # gzip works; a broken gzip body is a 400; chunked bodies (as JavaScript exporters send) work.
    gz = {**PROTOBUF, "Content-Encoding": "gzip"}
    assert post(url, gzip.compress(request.SerializeToString()), gz)[0] == 200
    assert post(url, b"\x1f\x8b\x08not-gzip", gz)[0] == 400
    assert post(url, request.SerializeToString(), PROTOBUF, chunked=True)[0] == 200
    # Over the size limit, plain or once decompressed: 413.
    huge = b"\x00" * (2 << 20)
    status, _, body = post(url, huge, PROTOBUF)
    assert status == 413 and status_pb2.Status.FromString(body).code == 8
    assert post(url, gzip.compress(huge), gz)[0] == 413
    # Partial success: the span with a bad id is rejected and said so, the others are stored.
    bad = ExportTraceServiceRequest()
    bad.CopyFrom(encode_spans(agent_run("run-partial")))
    bad.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x01" * 7
    status, _, body = post(url, bad.SerializeToString(), PROTOBUF)
    partial = ExportTraceServiceResponse.FromString(body).partial_success
    assert status == 200 and partial.rejected_spans == 1 and "span id must be 8 bytes" in partial.error_message
    status, _, body = post(url, otlp_json(bad), JSON)
    assert json.loads(body)["partialSuccess"]["rejectedSpans"] == "1"
    srv.stop()
    stored = dump_store(
        srv.store_dir, "SELECT RunId, count() FROM tracehouse.otel_traces FINAL GROUP BY RunId ORDER BY 1"
    )
    assert stored == [["run-partial", 2], ["run-rules", 3]]


def test_grpc_follows_the_otlp_rules(server):
    srv = server("--max-request-mb", "1")
    channel = grpc.insecure_channel(srv.grpc)
    export = channel.unary_unary(EXPORT)  # raw bytes, to send what a real exporter never would
    assert export(b"", timeout=10) == b""
    with pytest.raises(grpc.RpcError) as info:
        export(b"\xff\xfenot protobuf", timeout=10)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        export(b"\x00" * (2 << 20), timeout=10)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    bad = encode_spans(agent_run("run-grpc-partial"))
    bad.resource_spans[0].scope_spans[0].spans[1].trace_id = b"\x00" * 16
    reply = ExportTraceServiceResponse.FromString(export(bad.SerializeToString(), timeout=10))
    assert reply.partial_success.rejected_spans == 1 and "trace id" in reply.partial_success.error_message
    channel.close()


def test_api_keys_name_tenants_and_wrong_keys_store_nothing(server):
    srv = server("--api-keys", "key-acme:acme,key-globex:globex")
    url = f"{srv.http}/v1/traces"
    body = encode_spans(agent_run("run-nokey")).SerializeToString()
    assert post(url, body, PROTOBUF)[0] == 401
    assert post(url, body, {**PROTOBUF, "Authorization": "Bearer wrong"})[0] == 401
    assert (
        post(
            url,
            encode_spans(agent_run("run-acme")).SerializeToString(),
            {**PROTOBUF, "Authorization": "Bearer key-acme"},
        )[0]
        == 200
    )
    assert (
        post(url, encode_spans(agent_run("run-globex")).SerializeToString(), {**PROTOBUF, "x-api-key": "key-globex"})[0]
        == 200
    )
    channel = grpc.insecure_channel(srv.grpc)
    export = channel.unary_unary(EXPORT)
    with pytest.raises(grpc.RpcError) as info:
        export(body, metadata=(("authorization", "Bearer nope"),), timeout=10)
    assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
    exporter = GrpcExporter(endpoint=srv.grpc, insecure=True, headers={"authorization": "Bearer key-globex"})
    assert exporter.export(agent_run("run-globex-grpc")) is SpanExportResult.SUCCESS
    exporter.shutdown()
    channel.close()
    srv.stop()
    runs = {run_id: row["Tenant"] for run_id, row in _run_rows(srv.store_dir).items()}
    assert runs == {"run-acme": "acme", "run-globex": "globex", "run-globex-grpc": "globex"}


def test_a_full_spool_asks_clients_to_retry_later(server):
    srv = server("--spool-max-mb", "1")
    big = ExportTraceServiceRequest()
    for i in range(7):  # about 700 KB: one fits in the 1 MiB spool, two do not
        big.MergeFrom(encode_spans(agent_run(f"run-big-{i}")))
    for rs in big.resource_spans:
        for span in rs.scope_spans[0].spans:
            span.attributes.add(key="padding").value.string_value = "x" * 33_000
    body = big.SerializeToString()
    assert 600_000 < len(body) < 1_000_000
    assert post(f"{srv.http}/v1/traces", body, PROTOBUF)[0] == 200
    status, headers, reply = post(f"{srv.http}/v1/traces", body, PROTOBUF)
    assert status == 503 and int(headers["retry-after"]) >= 1
    assert status_pb2.Status.FromString(reply).code == 14
    channel = grpc.insecure_channel(srv.grpc)
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(EXPORT)(body, timeout=10)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    retry = RetryInfo.FromString(dict(info.value.trailing_metadata())["google.rpc.retryinfo-bin"])
    assert retry.retry_delay.seconds >= 1
    channel.close()
    # Once the writer has stored the first request, there is room again.
    deadline = time.monotonic() + 120
    while post(f"{srv.http}/v1/traces", body, PROTOBUF)[0] != 200:
        assert time.monotonic() < deadline, "the spool never drained"
        time.sleep(0.5)


def test_health_readiness_and_metrics(server):
    srv = server()
    assert json.loads(urllib.request.urlopen(f"{srv.http}/healthz").read()) == {"status": "ok"}
    assert json.loads(urllib.request.urlopen(f"{srv.http}/readyz").read())["status"] == "ok"
    post(f"{srv.http}/v1/traces", encode_spans(agent_run("run-m")).SerializeToString(), PROTOBUF)
    post(f"{srv.http}/v1/traces", b"junk", PROTOBUF)
    deadline = time.monotonic() + 120
    while True:
        text = urllib.request.urlopen(f"{srv.http}/metrics").read().decode()
        if "tracehouse_insert_batch_rows_count 1.0" in text or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert 'tracehouse_items_accepted_total{signal="traces"} 3.0' in text
    assert 'tracehouse_requests_total{outcome="malformed",transport="http"} 1.0' in text
    assert "tracehouse_insert_batch_rows_count 1.0" in text
    assert "tracehouse_ingest_lag_seconds_count 1.0" in text
    assert "tracehouse_spool_pending_bytes 0.0" in text
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{srv.http}/v1/nothing-here")
    assert info.value.code == 404


def test_every_acknowledged_span_survives_sigkill_exactly_once(server, tmp_path):
    srv = server()
    acked: list[str] = []
    stop = threading.Event()

    def client(target: Server) -> None:
        i = 0
        while not stop.is_set():
            spans = agent_run(f"run-kill-{i}")
            try:
                status, _, _ = post(f"{target.http}/v1/traces", encode_spans(spans).SerializeToString(), PROTOBUF)
            except OSError:
                return  # the server is gone
            if status == 200:
                acked.extend(s.context.span_id.to_bytes(8, "big").hex() for s in spans)
            i += 1

    thread = threading.Thread(target=client, args=(srv,))
    thread.start()
    deadline = time.monotonic() + 60
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    srv.stop(signal.SIGKILL)  # mid-stream, no warning
    stop.set()
    thread.join()
    assert len(acked) >= 300

    again = server(store_dir=srv.store_dir)  # replays the spool into the store
    assert "stopped" in again.stop()
    stored = dump_store(srv.store_dir, "SELECT SpanId, count() FROM tracehouse.otel_traces FINAL GROUP BY SpanId")
    counts = dict(map(tuple, stored))
    missing = [span for span in acked if span not in counts]
    assert not missing, f"{len(missing)} acknowledged spans lost"
    assert set(counts.values()) == {1}


@pytest.mark.filterwarnings("ignore:.*LoggingHandler.*:DeprecationWarning")
def test_logs_arrive_correlated_with_their_span_and_run(server):
    import logging

    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    srv = server()
    rec = Recorder(service="log-agent")
    providers = []
    for exporter in (
        HttpLogExporter(endpoint=f"{srv.http}/v1/logs"),
        GrpcLogExporter(endpoint=srv.grpc, insecure=True),
    ):
        provider = LoggerProvider(resource=rec.provider.resource)
        provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        providers.append(provider)
    logger = logging.getLogger("tests.agent")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    with rec.span("invoke_agent logger", **{semconv.TRACEHOUSE_RUN_ID: "run-logs"}) as span:
        for transport, provider in zip(("http", "grpc"), providers, strict=True):
            handler = LoggingHandler(logger_provider=provider)
            logger.addHandler(handler)
            logger.warning("tool retry %s", transport, extra={semconv.TRACEHOUSE_RUN_ID: "run-logs"})
            logger.removeHandler(handler)
        trace_id = format(span.get_span_context().trace_id, "032x")
    for provider in providers:
        provider.shutdown()
    srv.stop()
    logs = dump_store(
        srv.store_dir,
        "SELECT Body, SeverityText, TraceId, RunId, ServiceName, Tenant FROM tracehouse.otel_logs FINAL ORDER BY Body",
    )
    assert logs == [
        ["tool retry grpc", "WARN", trace_id, "run-logs", "log-agent", "default"],
        ["tool retry http", "WARN", trace_id, "run-logs", "log-agent", "default"],
    ]


def test_the_receiver_takes_data_while_its_clickhouse_server_is_down(tmp_path):
    from tracehouse.ingest.spool import Spool

    dead_port = unused_port()
    spool_dir = str(tmp_path / "spool")
    srv = Server(str(tmp_path / "unused"), ("--spool", spool_dir), store=f"http://127.0.0.1:{dead_port}/tracehouse")
    srv.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{srv.http}/readyz")
        assert info.value.code == 503 and "store" in json.loads(info.value.read())["problems"][0]
        body = encode_spans(agent_run("run-outage")).SerializeToString()
        assert post(f"{srv.http}/v1/traces", body, PROTOBUF)[0] == 200
    finally:
        started = time.monotonic()
        out = srv.stop()
    assert time.monotonic() - started < 20  # no waiting out the drain budget for an unreachable store
    assert "left in the spool for the next start" in out
    assert len(Spool(spool_dir).read(0)) == 1  # acknowledged, and waiting durably for the store


def crashed_agent_run(run_id: str, ended_ago: float):
    """A run's spans with times ``ended_ago`` seconds back: (the children its process exported
    before it died, its root span, which a live process would have sent last, failed)."""
    from opentelemetry import trace

    rec = Recorder(service="e2e-agent")
    common = {semconv.TRACEHOUSE_RUN_ID: run_id}
    start = time.time_ns() - int(ended_ago * 1e9) - 3_000_000
    root = rec.tracer.start_span(
        "invoke_agent planner",
        start_time=start,
        attributes={**common, semconv.GEN_AI_OPERATION_NAME: "invoke_agent", semconv.GEN_AI_AGENT_NAME: "planner"},
    )
    inside = trace.set_span_in_context(root)
    for n, (name, operation) in enumerate((("chat gpt-4o-mini", "chat"), ("execute_tool search", "execute_tool"))):
        child = rec.tracer.start_span(
            name, context=inside, start_time=start + n * 1_000_000,
            attributes={**common, semconv.GEN_AI_OPERATION_NAME: operation},
        )  # fmt: skip
        child.end(end_time=start + (n + 1) * 1_000_000)
    children = rec.exporter.get_finished_spans()
    root.set_status(Status(StatusCode.ERROR, "out of memory"))
    root.end(end_time=start + 3_000_000)
    return children, [s for s in rec.exporter.get_finished_spans() if s.name.startswith("invoke_agent")]


def test_a_run_whose_root_never_came_reads_incomplete_everywhere_until_its_root_arrives(server):
    from conftest import run_cli
    from test_api_agents import get, wait_for_history_item

    srv = server("--run-idle-timeout", "5m")
    quiet, quiet_root = crashed_agent_run("run-quiet", ended_ago=600)  # quiet for 10 minutes: incomplete
    recent, _ = crashed_agent_run("run-recent", ended_ago=60)  # a minute: still running
    exporter = HttpExporter(endpoint=f"{srv.http}/v1/traces")
    assert exporter.export(list(quiet) + list(recent)) is SpanExportResult.SUCCESS

    def history_status(run_id: str, status: str) -> dict:
        return wait_for_history_item(
            srv.http, lambda item: item["run_id"] == run_id and item["status"] == status, f"{run_id} {status}"
        )

    item = history_status("run-quiet", "incomplete")
    assert item["node_count"] == 2 and item["duration"] == "0.002s"  # from its first span to its last
    assert {i["run_id"]: i["status"] for i in get(f"{srv.http}/api/v1/agents/history")}["run-recent"] == "running"
    (stats,) = get(f"{srv.http}/api/v1/stats")
    assert (stats["runs"], stats["incomplete"], stats["running"]) == (2, 1, 1)
    logs = get(f"{srv.http}/api/v1/agents/logs?run_id=run-quiet")  # what it did before it died
    assert [n["metadata"]["name"] for n in logs["nodes"]] == ["chat gpt-4o-mini", "execute_tool search"]
    listed = run_cli("runs", "--url", srv.http)
    assert re.search(r" incomplete +0\.002s +2 .* run-quiet", listed.stdout), listed.stdout
    assert json.loads(run_cli("stats", "--url", srv.http, "--json").stdout)[0]["incomplete"] == 1

    assert exporter.export(quiet_root) is SpanExportResult.SUCCESS  # its root after all: it wins
    history_status("run-quiet", "failed")
    exporter.shutdown()
    assert "everything acknowledged is stored" in srv.stop()
    daily = dump_store(
        srv.store_dir,
        "SELECT AgentName, sum(Runs), sum(Failed), sum(Running), sum(Incomplete) FROM tracehouse.agent_daily FINAL "
        "GROUP BY AgentName HAVING sum(Runs) > 0 ORDER BY AgentName",
    )
    assert daily == [["", 1, 0, 1, 0], ["planner", 1, 1, 0, 0]]  # only the root named the agent

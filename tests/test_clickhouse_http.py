"""The server store path: clickhouse-connect over HTTP, against the stand-in endpoint
(:mod:`clickhouse_http`, the embedded engine behind ClickHouse's HTTP interface).

First the endpoint itself answers as a server does (else the store's tests run on it would
prove little); then ``tracehouse serve --store http://...`` end to end: OTLP in, the read API
answering while the writer writes, everything stored once.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
import urllib.request
import uuid

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from otel_helpers import Recorder
from serve_helpers import Server

from tracehouse import semconv
from tracehouse.store.client import connect
from tracehouse.store.dsn import parse_dsn
from tracehouse.store.errors import is_data_error

pytestmark = pytest.mark.clickhouse_http


@pytest.fixture
def database(clickhouse_http):
    name = f"h_{uuid.uuid4().hex[:10]}"
    client = clickhouse_connect.get_client(dsn=clickhouse_http.url)
    client.command(f"CREATE DATABASE {name}")
    yield name
    client.command(f"DROP DATABASE IF EXISTS {name} SYNC")
    client.close()


@pytest.mark.parametrize("compress", ["lz4", "zstd", "gzip", False])
def test_inserts_and_reads_in_every_compression(clickhouse_http, database, compress):
    client = clickhouse_connect.get_client(dsn=clickhouse_http.url, database=database, compress=compress)
    client.command("CREATE TABLE t (k UInt32, s String, m Map(String, String)) ENGINE = MergeTree ORDER BY k")
    rows = [[i, f"text {i}" * 50, {"a": str(i)}] for i in range(20_000)]
    client.insert("t", rows, column_names=["k", "s", "m"])
    result = client.query("SELECT k, s, m FROM t WHERE k < {n:UInt32} ORDER BY k", parameters={"n": 3})
    assert [list(r) for r in result.result_rows] == rows[:3]
    assert client.command("SELECT count() FROM t") == 20_000
    client.close()


def test_parameters_are_bound_not_spliced(clickhouse_http):
    client = clickhouse_connect.get_client(dsn=clickhouse_http.url)
    tricky = "it's a \\ 'quoted'\t\n value"
    assert client.query("SELECT {v:String}", parameters={"v": tricky}).result_rows == [(tricky,)]
    assert client.query("SELECT {v:Array(String)}", parameters={"v": ["a'", "b"]}).result_rows == [(["a'", "b"],)]


def test_temporary_tables_live_in_their_session_and_settings_in_their_request(clickhouse_http):
    one, two = (clickhouse_connect.get_client(dsn=clickhouse_http.url) for _ in range(2))
    one.command("CREATE TEMPORARY TABLE keys (k UInt8) ENGINE = Memory")
    one.command("INSERT INTO keys VALUES (1)")
    assert one.command("SELECT count() FROM keys") == 1
    with pytest.raises(DatabaseError, match="UNKNOWN_TABLE"):
        two.command("SELECT count() FROM keys")
    assert one.command("SELECT getSetting('max_threads')", settings={"max_threads": 3}) == 3
    assert one.command("SELECT getSetting('max_threads')") != 3  # a URL setting lasts one request


def test_a_session_used_by_two_requests_at_once_is_refused_as_a_server_refuses_it(clickhouse_http):
    session = str(uuid.uuid4())
    url = f"{clickhouse_http.url}/?session_id={session}"
    started = threading.Event()

    def slow() -> None:
        started.set()
        urllib.request.urlopen(url, data=b"SELECT sleep(1)").read()

    thread = threading.Thread(target=slow)
    thread.start()
    started.wait()
    time.sleep(0.3)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, data=b"SELECT 1")
    thread.join()
    assert refused.value.headers["X-ClickHouse-Exception-Code"] == "373"
    assert b"SESSION_IS_LOCKED" in refused.value.read()


def test_errors_carry_the_codes_the_store_classifies(clickhouse_http, database):
    client = clickhouse_connect.get_client(dsn=clickhouse_http.url, database=database)
    client.command("CREATE TABLE n (d Date) ENGINE = MergeTree ORDER BY d")
    with pytest.raises(DatabaseError) as refused:
        client.command("INSERT INTO n VALUES ('not a date')")
    assert "Code: 38" in str(refused.value) or "Code: 6" in str(refused.value) or "Code: 27" in str(refused.value)
    assert is_data_error(refused.value)
    with pytest.raises(DatabaseError) as missing:
        client.query("SELECT * FROM no_such_table")
    assert "Code: 60" in str(missing.value) and not is_data_error(missing.value)


# --- tracehouse serve on a server store -----------------------------------------------------------


def _agent_run(run_id: str):
    rec = Recorder(service="e2e-agent")
    common = {semconv.TRACEHOUSE_RUN_ID: run_id}
    root = {semconv.GEN_AI_OPERATION_NAME: "invoke_agent", semconv.GEN_AI_AGENT_NAME: "planner"}
    with rec.span("invoke_agent planner", **common, **root, **{semconv.TRACEHOUSE_RUN_INPUT: f"question {run_id}"}):
        chat = {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini"}
        with rec.span("chat gpt-4o-mini", **common, **chat, **{semconv.GEN_AI_USAGE_INPUT_TOKENS: 100}):
            pass
        with rec.span("execute_tool search", **common, **{semconv.GEN_AI_OPERATION_NAME: "execute_tool"}):
            pass
    return rec.exporter.get_finished_spans()


def _get(url: str) -> object:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{url}: {exc.code} {exc.read()[:500]!r}") from None


@pytest.mark.parametrize("normalize", ["auto", "python"])
def test_serve_on_a_clickhouse_server_receives_otlp_and_answers_reads(clickhouse_http, tmp_path, normalize):
    database = f"e2e_{uuid.uuid4().hex[:10]}"
    srv = Server(
        str(tmp_path / "unused"),
        ("--spool", str(tmp_path / "spool"), "--normalize", normalize, "--batch-interval", "0.1"),
        store=f"{clickhouse_http.url}/{database}",
    )
    srv.start()
    try:
        exporter = HttpExporter(endpoint=f"{srv.http}/v1/traces")
        runs = [f"run-{n}" for n in range(6)]
        recorded = [_agent_run(run_id) for run_id in runs]
        for spans in recorded:
            assert exporter.export(spans) is SpanExportResult.SUCCESS
        assert exporter.export(recorded[0]) is SpanExportResult.SUCCESS  # a retry: stored once
        exporter.shutdown()
        # Reads from several threads while the writer stores: one server session cannot take both.
        deadline = time.monotonic() + 60
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            while True:
                answers = list(pool.map(_get, [f"{srv.http}/api/v1/agents/history?limit=100"] * 8))
                if all(len(a) == len(runs) for a in answers) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        history = answers[-1]
        assert sorted(r["run_id"] for r in history) == runs
        assert {(r["status"], r["node_count"], r["agent"]) for r in history} == {("success", 2, "planner")}
        logs = _get(f"{srv.http}/api/v1/agents/logs?run_id=run-3")
        assert logs["run_id"] == "run-3" and [n["type"] for n in logs["nodes"]] == ["llm", "tool"]
    except BaseException:
        print("".join(srv.output) + srv.stop())
        raise
    out = srv.stop()
    assert "everything acknowledged is stored" in out, "".join(srv.output)
    store = connect(parse_dsn(f"{clickhouse_http.url}/{database}"))
    try:
        spans = store.query(
            f"SELECT RunId, count(), uniqExact(SpanId) FROM {database}.otel_traces FINAL GROUP BY RunId ORDER BY RunId"
        ).result_rows
        assert spans == [(run_id, 3, 3) for run_id in runs]
        assert "Traceback" not in "".join(srv.output), "".join(srv.output)
    finally:
        store.command(f"DROP DATABASE IF EXISTS {database} SYNC")
        store.close()

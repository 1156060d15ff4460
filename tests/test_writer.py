"""The writer against a store that fails: nothing acknowledged is dropped, nothing counts twice."""

from __future__ import annotations

import time

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from otel_helpers import Recorder

import tracehouse
from tracehouse import semconv
from tracehouse.ingest.metrics import Metrics
from tracehouse.ingest.spool import KIND_TRACES, Spool
from tracehouse.ingest.writer import Writer
from tracehouse.store import queries, rollups, schema
from tracehouse.store.reads import ReadService
from tracehouse.store.retention import RetentionPolicy

pytestmark = pytest.mark.both_stores  # and against a ClickHouse HTTP endpoint (conftest)


def _request(run_id: str) -> bytes:
    rec = Recorder()
    with rec.span(
        "invoke_agent a", **{semconv.TRACEHOUSE_RUN_ID: run_id, semconv.GEN_AI_OPERATION_NAME: "invoke_agent"}
    ):
        with rec.span(
            "chat m",
            **{
                semconv.TRACEHOUSE_RUN_ID: run_id,
                semconv.GEN_AI_OPERATION_NAME: "chat",
                semconv.GEN_AI_INPUT_MESSAGES: '[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]',
            },
        ):
            pass
    return encode_spans(rec.exporter.get_finished_spans()).SerializeToString()


def _wait(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_records_wait_out_a_failing_store_and_are_stored_once(store, tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    metrics = Metrics()
    writer = Writer(store, spool, RetentionPolicy(store, 30), metrics, interval=0.05, max_backoff=0.2)
    for run in ("run-1", "run-2"):
        spool.append(KIND_TRACES, "default", _request(run))
    # The events table goes away: each attempt inserts the spans, then fails on the events.
    store.client.command(f"DETACH TABLE {store.table(schema.EVENTS)}")
    writer.start()
    try:
        _wait(lambda: metrics.write_errors._value.get() >= 3)
        assert not writer.healthy and spool.pending_records == 2  # kept, not dropped
        store.client.command(f"ATTACH TABLE {store.table(schema.EVENTS)}")
        _wait(lambda: spool.pending_records == 0)
        assert writer.healthy
        assert metrics.stored.labels("traces")._value.get() == 4  # counted when committed, not per attempt
        assert metrics.registry.get_sample_value("tracehouse_insert_batch_rows_sum") == 4  # no listener asked
    finally:
        writer.stop(timeout=5)
        spool.close()
    spans = store.query(f"SELECT count() FROM {store.table(schema.SPANS)}")[0][0]  # physical rows, no FINAL
    assert spans == 4  # the retried span inserts were dropped by their deduplication token
    runs = store.query(f"SELECT RunId, NodeCount, LlmCalls FROM {store.table(schema.RUNS)} FINAL ORDER BY RunId")
    assert runs == [("run-1", 1, 1), ("run-2", 1, 1)]
    events = store.query(f"SELECT count() FROM {store.table(schema.EVENTS)} FINAL")[0][0]
    assert events == 2  # one user message per LLM call


def test_a_stopping_writer_stores_what_the_spool_holds(store, tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    writer = Writer(store, spool, RetentionPolicy(store, 30), Metrics(), interval=30)  # would wait 30 s
    writer.start()
    spool.append(KIND_TRACES, "default", _request("run-late"))
    started = time.monotonic()
    writer.stop(timeout=10)
    assert time.monotonic() - started < 10 and spool.pending_records == 0
    spool.close()
    assert store.query(f"SELECT RunId FROM {store.table(schema.RUNS)} FINAL") == [("run-late",)]


def test_tenant_retention_settings_apply_to_new_rows(store, tmp_path):
    store.client.insert(
        store.table(schema.TENANTS), [["acme", 7, 3]], column_names=["Tenant", "RetentionDays", "PayloadRetentionDays"]
    )
    spool = Spool(str(tmp_path / "spool"))
    writer = Writer(store, spool, RetentionPolicy(store, 30), Metrics(), interval=0.05)
    spool.append(KIND_TRACES, "acme", _request("run-acme"))
    spool.append(KIND_TRACES, "other", _request("run-other"))
    writer.start()
    _wait(lambda: spool.pending_records == 0)
    writer.stop()
    spool.close()
    rows = store.query(f"SELECT DISTINCT Tenant, TtlDays, PayloadTtlDays FROM {store.table(schema.SPANS)} ORDER BY 1")
    assert rows == [("acme", 7, 3), ("other", 30, 30)]


def test_a_store_that_cannot_be_reached_yet_is_connected_when_it_comes_back(store, tmp_path):
    attempts = []

    def connect():
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ConnectionRefusedError("the ClickHouse server is down")
        return store

    spool = Spool(str(tmp_path / "spool"))
    retention = RetentionPolicy(None, 30)
    writer = Writer(connect, spool, retention, Metrics(), interval=0.05, max_backoff=0.1)
    assert not writer.healthy
    spool.append(KIND_TRACES, "default", _request("run-after-outage"))
    writer.start()
    _wait(lambda: spool.pending_records == 0)
    writer.stop()
    spool.close()
    assert len(attempts) == 3 and writer.healthy and retention.store is store
    assert store.query(f"SELECT RunId FROM {store.table(schema.RUNS)} FINAL") == [("run-after-outage",)]


def _with_unknown_group(payload: bytes) -> bytes:
    """Valid protobuf (an unknown field of the deprecated group type, which protobuf skips) that
    the engine's Protobuf input does not read."""
    start, end = 50 << 3 | 3, 50 << 3 | 4
    return payload + bytes([start & 0x7F | 0x80, start >> 7, 0x08, 0x01, end & 0x7F | 0x80, end >> 7])


def _flattened(run_id: str) -> bytes:
    rec = Recorder()
    attributes = {
        semconv.TRACEHOUSE_RUN_ID: run_id,
        semconv.GEN_AI_OPERATION_NAME: "invoke_agent",
        "gen_ai.prompt.0.role": "user",  # OpenLLMetry's flattened messages: the Python normalizer's
        "gen_ai.prompt.0.content": "hi",
    }
    with rec.span("invoke_agent a", **attributes):
        pass
    return encode_spans(rec.exporter.get_finished_spans()).SerializeToString()


def _stored_runs(store) -> list[tuple[str, int]]:
    return store.query(f"SELECT RunId, NodeCount FROM {store.table(schema.RUNS)} FINAL ORDER BY RunId")


def test_the_engine_and_python_share_a_batch_and_its_run_refresh(store, tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    metrics = Metrics()
    writer = Writer(store, spool, RetentionPolicy(store, 30), metrics, interval=0.05, engine_normalize=True)
    seen = []
    writer.listeners.append(lambda nodes, events: seen.extend(nodes))
    spool.append(KIND_TRACES, "default", _request("run-engine"))
    spool.append(KIND_TRACES, "default", _flattened("run-python"))
    spool.append(KIND_TRACES, "default", _with_unknown_group(_request("run-next")))
    writer.write(spool.read(spool.committed)[:2])
    assert _stored_runs(store) == [("run-engine", 1), ("run-python", 0)]  # nodes besides the root
    assert metrics.stored.labels("traces")._value.get() == 3  # spans stored by either path
    assert sorted((n.run_id, n.name) for n in seen) == [
        ("run-engine", "chat m"),
        ("run-engine", "invoke_agent a"),
        ("run-python", "invoke_agent a"),
    ]
    # A batch the engine cannot read is normalized in Python, not retried forever.
    writer.write(spool.read(spool.committed))
    assert metrics.engine_fallbacks._value.get() == 1
    assert ("run-next", 1) in _stored_runs(store)
    assert metrics.stored.labels("traces")._value.get() == 5
    spool.close()


def _run_spans(run_id: str, *, root: bool = True, calls: int = 2) -> bytes:
    """A run in the shapes a run row reads: metadata, user and conversation on the root, priced
    LLM calls, a failed tool (or, with ``root=False``, the children alone: a run still going)."""
    rec = Recorder()
    common = {semconv.TRACEHOUSE_RUN_ID: run_id, semconv.GEN_AI_CONVERSATION_ID: f"conv-{run_id}"}
    root_attributes = {
        **common,
        semconv.GEN_AI_OPERATION_NAME: "invoke_agent",
        semconv.GEN_AI_AGENT_NAME: "planner",
        semconv.TRACEHOUSE_RUN_METADATA + ".ticket": "T-1",
        semconv.USER_ID: "ada",
    }

    def children():
        for n in range(calls):
            with rec.span(
                "chat gpt-4o",
                **common,
                **{
                    semconv.GEN_AI_OPERATION_NAME: "chat",
                    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o",
                    semconv.GEN_AI_USAGE_INPUT_TOKENS: 100 + n,
                    semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 10,
                },
            ):
                pass
        with rec.span("execute_tool search", **common, **{semconv.GEN_AI_OPERATION_NAME: "execute_tool"}) as tool:
            tool.set_status(Status(StatusCode.ERROR, "no results"))

    if root:
        with rec.span("invoke_agent planner", **root_attributes):
            children()
    else:
        with rec.span("step", **common):  # a parent so the children share a trace
            children()
    return encode_spans(rec.exporter.get_finished_spans()).SerializeToString()


def _run_rows(store) -> list[tuple]:
    columns = ", ".join(c for c in rollups.RUN_COLUMNS if c != "Version")
    return store.query(f"SELECT {columns} FROM {store.table(schema.RUNS)} FINAL ORDER BY Tenant, RunId")


def test_new_runs_are_computed_from_the_batch_as_from_the_stored_spans(store, tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    writer = Writer(store, spool, RetentionPolicy(store, 30), Metrics(), engine_normalize=True)
    complete = _run_spans("run-complete")
    spool.append(KIND_TRACES, "default", complete)
    spool.append(KIND_TRACES, "default", complete)  # delivered twice in one batch: counted once
    spool.append(KIND_TRACES, "acme", _run_spans("run-other-tenant", calls=1))
    spool.append(KIND_TRACES, "default", _run_spans("run-going", root=False))
    calls = []
    original = store.client.command
    store.client.command = lambda sql, *a, **k: (calls.append(sql), original(sql, *a, **k))[1]
    try:
        writer.write(spool.read(spool.committed))
    finally:
        store.client.command = original
    # Every run was new: none was recomputed from the spans table.
    assert not any("FINAL" in sql and store.table(schema.SPANS) in sql for sql in calls)
    from_batch = _run_rows(store)
    assert [(r[0], r[1]) for r in from_batch] == [
        ("acme", "run-other-tenant"),
        ("default", "run-complete"),
        ("default", "run-going"),
    ]
    complete_row = dict(zip(rollups.RUN_COLUMNS, from_batch[1], strict=False))
    assert complete_row["LlmCalls"] == 2 and complete_row["InputTokens"] == 201 and complete_row["FailedNodes"] == 1
    assert complete_row["Metadata"] == {"ticket": "T-1"} and complete_row["CostUsd"] > 0
    # The same runs recomputed from the stored (deduplicated) spans give the same rows.
    started = {(tenant, run_id): row[10] for row in from_batch for tenant, run_id in [row[:2]]}
    store.refresh_runs(started)
    assert _run_rows(store) == from_batch
    # A run that has a row is recomputed from the spans table: its root came in a later batch.
    spool.append(KIND_TRACES, "default", _run_spans("run-going", calls=1))
    writer.write(spool.read(spool.committed))
    going = dict(zip(rollups.RUN_COLUMNS, _run_rows(store)[2], strict=False))
    summary = (going["RunId"], going["Status"], going["LlmCalls"], going["FailedNodes"])
    assert summary == ("run-going", "completed", 3, 2)
    spool.close()


@pytest.mark.parametrize("in_engine", [True, False], ids=["engine", "python"])
def test_records_the_store_refuses_are_split_off_and_the_rest_is_stored(store, tmp_path, in_engine):
    spool = Spool(str(tmp_path / "spool"))
    metrics = Metrics()
    writer = Writer(store, spool, RetentionPolicy(store, 30), metrics, interval=0.2, engine_normalize=in_engine)
    junk = {5, 17, 18, 33}  # among 40: alone, side by side, near the end
    for n in range(40):
        payload = b"\x0a\xff\xff\xff\x0fjunk" if n in junk else _request(f"run-{n}")
        spool.append(KIND_TRACES, "default", payload)
    writer.start()
    try:
        _wait(lambda: spool.pending_records == 0, timeout=60)
    finally:
        writer.stop(timeout=5)
        spool.close()
    runs = store.query(f"SELECT DISTINCT RunId FROM {store.table(schema.SPANS)}")
    assert {r for (r,) in runs} == {f"run-{n}" for n in range(40) if n not in junk}
    entries = writer.quarantine.entries()
    assert len(entries) == 4 and {e.tenant for e in entries} == {"default"}
    assert writer.quarantine.stats() == (4, 4 * len(b"\x0a\xff\xff\xff\x0fjunk"))
    assert metrics.quarantined.labels("traces")._value.get() == 4
    assert metrics.stored.labels("traces")._value.get() == 2 * 36  # each part once, the quarantined not
    assert writer.healthy and metrics.write_errors._value.get() == 0


def test_which_failures_are_the_datas_fault():
    from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

    from tracehouse.store.errors import is_data_error

    data = [
        DatabaseError("Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100)"),
        DatabaseError("Code: 70. DB::Exception: Unexpected inf or nan to integer conversion"),
        DataError("Unable to create native array for column `Timestamp`"),
        OverflowError("cannot convert float infinity to integer"),
        ValueError("bad value"),
    ]
    retry = [
        DatabaseError("Code: 252. DB::Exception: Too many parts (3001). Merges are processing significantly slower"),
        DatabaseError("Code: 60. DB::Exception: Unknown table expression identifier"),
        DatabaseError("Code: 241. DB::Exception: Memory limit (total) exceeded"),
        DatabaseError("Code: 159. DB::Exception: Timeout exceeded"),
        OperationalError("Error HTTPConnectionPool: connection refused"),
        ConnectionRefusedError(),
        OSError(28, "No space left on device"),
        MemoryError(),
        RuntimeError("something else"),
    ]
    assert [is_data_error(e) for e in data] == [True] * len(data)
    assert [is_data_error(e) for e in retry] == [False] * len(retry)


def test_the_writer_turns_a_run_that_went_quiet_without_its_root_incomplete(store, tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    writer = Writer(store, spool, RetentionPolicy(store, 30), Metrics(), interval=0.05, engine_normalize=True)
    heard = []
    writer.idle_runs.listeners.append(heard.extend)
    spool.append(KIND_TRACES, "default", _run_spans("run-crashed", root=False))  # its process died
    writer.write(spool.read(spool.committed))  # stored under the default timeout (30 minutes): running
    assert [(r[1], r[9]) for r in _run_rows(store)] == [("run-crashed", "running")]
    store.run_idle_timeout = 1  # from now on a second without a span is enough
    writer.start()
    try:
        _wait(lambda: heard)  # the writer's loop sweeps between batches
        assert [r.run_id for r in heard] == ["run-crashed"]
        assert [(r[1], r[9]) for r in _run_rows(store)] == [("run-crashed", "incomplete")]
        spool.append(KIND_TRACES, "default", _run_spans("run-crashed", calls=0))  # the root after all
        _wait(lambda: spool.pending_records == 0)
    finally:
        writer.stop(timeout=5)
        spool.close()
    (row,) = _run_rows(store)
    assert (row[1], row[9]) == ("run-crashed", "completed")  # a late root wins
    assert len(heard) == 1


def _at_the_end_of_the_clock() -> bytes:
    """A request the receiver would refuse (its span ends at the clock's end) but that an
    older version could have spooled: it decodes, and the store refuses its times."""
    rec = Recorder()
    with rec.span("late", **{semconv.TRACEHOUSE_RUN_ID: "run-at-the-end"}):
        pass
    request = encode_spans(rec.exporter.get_finished_spans())
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.start_time_unix_nano, span.end_time_unix_nano = 2**64 - 2000, 2**64 - 1000
    return request.SerializeToString()


def test_a_request_that_decodes_but_is_refused_is_found_by_splitting_the_batch(store, tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    metrics = Metrics()
    writer = Writer(store, spool, RetentionPolicy(store, 30), metrics, interval=0.2, engine_normalize=False)
    for n in range(12):
        spool.append(KIND_TRACES, "default", _at_the_end_of_the_clock() if n == 7 else _request(f"run-{n}"))
    writer.start()
    try:
        _wait(lambda: spool.pending_records == 0, timeout=60)
    finally:
        writer.stop(timeout=5)
        spool.close()
    runs = store.query(f"SELECT DISTINCT RunId FROM {store.table(schema.SPANS)}")
    assert {r for (r,) in runs} == {f"run-{n}" for n in range(12) if n != 7}
    (entry,) = writer.quarantine.entries()
    assert "DataError" in entry.error or "Code:" in entry.error


@pytest.mark.parametrize("engine_normalize", [True, False], ids=["engine", "python"])
def test_a_run_whose_process_died_before_its_root_ended_is_incomplete_and_names_its_agent(
    store, tmp_path, engine_normalize
):
    exporter = InMemorySpanExporter()
    tracehouse.configure("crashing-app", exporter=exporter, batch=False)
    with tracehouse.run("planner", input="Plan Rome") as run:
        with tracehouse.node("plan"):
            with tracehouse.llm_call("gpt-4o-mini", "openai") as llm:
                llm.record_response("1. flights", input_tokens=10, output_tokens=2)
        with tracehouse.node("researcher", type="agent"):  # an agent node: its own name, not the run's
            with tracehouse.tool("search", {"q": "Rome"}) as found:
                found.set_result("ok")
        # The process dies here: its children were exported, its root never ends.
        exported = encode_spans(exporter.get_finished_spans()).SerializeToString()
        run_id = run.run_id
    exporter.clear()

    spool = Spool(str(tmp_path / "spool"))
    writer = Writer(store, spool, RetentionPolicy(store, 30), Metrics(), engine_normalize=engine_normalize)
    spool.append(KIND_TRACES, "default", exported)
    writer.write(spool.read(spool.committed))
    spool.close()
    store.run_idle_timeout = 1
    time.sleep(1.1)
    assert [r.run_id for r in store.mark_idle_runs()] == [run_id]  # the writer's sweep
    (item,) = ReadService(store).history()
    assert (item.run_id, item.status, item.agent) == (run_id, "incomplete", "planner")
    assert [i.run_id for i in ReadService(store).history(agent="planner")] == [run_id]
    nodes = {n.name: n.agent_name for n in queries.run_nodes(store, "default", run_id)}
    assert nodes == {
        "plan": "planner",
        "chat gpt-4o-mini": "planner",
        "researcher": "researcher",
        "execute_tool search": "planner",
    }

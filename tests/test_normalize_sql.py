"""The engine's normalizer stores what the Python normalizer stores, span for span.

Every convention fixture of test_normalize is captured as it runs (its request and its tenant
and retention arguments), then written by both paths into the real embedded engine and the
rows compared; so a fixture added there is checked here too. More fixtures below cover what
only the engine path has to get right: attribute value encodings, previews, span events, and
the records it must leave to Python.
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import pytest
import test_normalize
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as GA
from opentelemetry.trace import Link, Status, StatusCode
from otel_helpers import Recorder

from tracehouse import pricing, semconv
from tracehouse.ingest import engine_input, normalize
from tracehouse.ingest import normalize_sql as sql
from tracehouse.ingest.normalize import Retention, normalize_spans
from tracehouse.ingest.normalize_sql import EngineNormalizer, frame
from tracehouse.store import rows, runs_seen, schema

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from ingest import build_request, renew_ids  # noqa: E402


def _capture_convention_fixtures() -> list[tuple[str, bytes, dict]]:
    captured = []
    original = test_normalize.normalize_spans

    def capturing(resource_spans, **kwargs):
        request = ExportTraceServiceRequest(resource_spans=resource_spans)
        captured.append((kwargs, request.SerializeToString()))
        return original(resource_spans, **kwargs)

    test_normalize.normalize_spans = capturing
    try:
        for name in dir(test_normalize):
            if name.startswith("test_"):
                getattr(test_normalize, name)()
    finally:
        test_normalize.normalize_spans = original
    return [(f"{i}", payload, kwargs) for i, (kwargs, payload) in enumerate(captured)]


def _engine_fixtures() -> list[tuple[str, bytes, dict]]:
    rec = Recorder("svc", **{"deployment.environment": "test", "host.cores": 2})
    values = {
        "v.bool": False,
        "v.int": -42,
        "v.float": 0.25,
        "v.float_whole": 3.0,
        "v.float_small": 0.00012,
        "v.strings": ["a/b", 'quote " and \\ slash', "naïve ☃", "tab\tnew\nline"],
        "v.ints": [1, 2, 3],
        "v.floats": [1.5, 2.0],
        "v.bools": [True, False],
        "v.empty": "",
    }
    with rec.span("invoke_agent bench", **{GA.GEN_AI_OPERATION_NAME: "invoke_agent", **values}) as root:
        root.add_event(semconv.EVENT_TRACEHOUSE_APPROVAL, {semconv.TRACEHOUSE_EVENT_DATA: '{"ok": true}'})
        root.add_event("note", {"plain": "not a replay event"})
        with rec.span(
            "chat gpt-4o-mini",
            **{
                GA.GEN_AI_OPERATION_NAME: "chat",
                GA.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                GA.GEN_AI_USAGE_INPUT_TOKENS: 1234,
                GA.GEN_AI_USAGE_OUTPUT_TOKENS: "56.9",  # a number as text: truncated, as Python does
                GA.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 2000,  # more than the input: capped in the cost
                GA.GEN_AI_SYSTEM_INSTRUCTIONS: "Be   brief.",  # not JSON: the text as it is
                GA.GEN_AI_INPUT_MESSAGES: json.dumps(
                    [
                        {"role": "user", "parts": [{"type": "text", "content": "first\n\n  question " * 30}]},
                        {"role": "assistant", "parts": [{"type": "text", "content": "answer"}]},
                        {
                            "role": "tool",
                            "parts": [{"type": "tool_call_response", "id": "c1", "response": {"temp": 21}}],
                        },
                        {"role": "user", "parts": [{"type": "text", "content": 7}, {"type": "image"}]},
                        "not a message",
                    ]
                ),
                GA.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                    [
                        {
                            "role": "assistant",
                            "finish_reason": "stop",
                            "parts": [
                                {"type": "reasoning", "content": "think"},
                                {"type": "tool_call", "id": "c2", "name": "lookup", "arguments": {"q": "x"}},
                                {
                                    "type": "tool_call",
                                    "id": "c3",
                                    "name": "route",
                                    "arguments": {"city": "Zürich", "legs": [1, 2.0, "é"], "far": 1.50},
                                },
                                {"type": "text", "content": "Sure – done ✓"},
                                {"type": "text", "content": None},
                            ],
                        }
                    ],
                    ensure_ascii=False,
                ),
            },
        ):
            pass
        with rec.span("execute_tool lookup", **{GA.GEN_AI_OPERATION_NAME: "execute_tool"}) as tool:
            tool.set_status(Status(StatusCode.ERROR, "lookup failed"))
        with rec.span("plain step", links=[Link(root.get_span_context(), {"link.kind": "follows"})]) as step:
            step.add_event(
                semconv.EVENT_TRACEHOUSE_CHECKPOINT,
                {semconv.TRACEHOUSE_CHECKPOINT_ID: "cp", semconv.TRACEHOUSE_CHECKPOINT_STATE: "{}"},
            )
            try:
                raise ValueError("boom")
            except ValueError as exc:
                step.record_exception(exc)
        with rec.span(
            "embed",
            **{
                GA.GEN_AI_OPERATION_NAME: "embeddings",
                GA.GEN_AI_REQUEST_MODEL: "unknown-model",
                semconv.TRACEHOUSE_COST_USD: "0.5",
            },
        ):
            pass
    fixtures = [("engine-values", rec.request().SerializeToString(), {"tenant": "acme"})]
    fixtures.append(("benchmark", build_request(3).SerializeToString(), {}))
    fixtures.append(("meaningless-numbers", meaningless_numbers().SerializeToString(), {}))
    return fixtures


# As the engine reads them (integers and text; a NaN or infinite double sends its record to Python).
MEANINGLESS = [-7, 2**63 - 1, "nan", "inf", "-inf", "1e30", "1e13", "-0.5", "12abc"]
MEANINGLESS_DOUBLES = [float("nan"), float("inf"), float("-inf"), 1e30, -0.5]


def meaningless_numbers(values: list = MEANINGLESS) -> ExportTraceServiceRequest:
    """LLM calls whose token counts and stated costs mean nothing: each is counted as 0 (a
    stated cost as not stated, so the price applies), never summed as it came."""
    rec = Recorder()
    with rec.span("invoke_agent numbers", **{GA.GEN_AI_OPERATION_NAME: "invoke_agent"}):
        for n, value in enumerate(values):
            attributes = {
                GA.GEN_AI_OPERATION_NAME: "chat",
                GA.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                GA.GEN_AI_USAGE_INPUT_TOKENS: value,
                GA.GEN_AI_USAGE_OUTPUT_TOKENS: 10,
                semconv.TRACEHOUSE_COST_USD: value if not isinstance(value, int) or value < 0 else str(float(value)),
            }
            with rec.span(f"chat {n}", **attributes):
                pass
    return rec.request()


def _python_only_fixtures() -> list[tuple[str, bytes]]:
    """Spans whose records the engine leaves to Python."""
    out = []
    for name, attributes in {
        "float-exponent": {"v": 1e-7},
        "flattened-messages": {"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "hi"},
    }.items():
        rec = Recorder()
        with rec.span(name, **attributes):
            pass
        out.append((name, rec.request().SerializeToString()))
    request = ExportTraceServiceRequest.FromString(out[0][1])
    kv = request.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="v.map")
    kv.value.kvlist_value.values.add(key="k").value.string_value = "v"
    out.append(("map-value", request.SerializeToString()))
    return out


CONVENTIONS = _capture_convention_fixtures()
ENGINE = _engine_fixtures()


def _retention(kwargs: dict, tenants: list[str]) -> tuple[Retention, dict[str, Retention]]:
    retention_for = kwargs.get("retention_for") or (lambda tenant: Retention())
    return Retention(), {t: retention_for(t) for t in tenants}


def _read(store) -> tuple[list, list]:
    columns = ", ".join(f"`{c}`" for c in rows.SPAN_COLUMNS)
    spans = store.query(f"SELECT {columns} FROM {store.table(schema.SPANS)} ORDER BY SpanId")
    events = store.query(
        f"SELECT {', '.join(rows.EVENT_COLUMNS)} FROM {store.table(schema.EVENTS)} ORDER BY SpanId, Seq"
    )
    for table in (schema.SPANS, schema.EVENTS):
        store.client.command(f"TRUNCATE TABLE {store.table(table)}")
    return spans, events


def _same(python, engine) -> bool:
    if isinstance(python, float):
        return math.isclose(python, engine, rel_tol=1e-9, abs_tol=1e-15)
    return python == engine


def _difference(python, engine):
    if isinstance(python, dict) and isinstance(engine, dict):
        keys = python.keys() | engine.keys()
        return {k: (python.get(k), engine.get(k)) for k in keys if python.get(k) != engine.get(k)}
    return python, engine


def _without_what_only_python_reads(payload: bytes) -> bytes:
    """The request less its flattened messages, per-message events and Langfuse JSON details:
    the rest of each convention is the engine's to read."""
    request = ExportTraceServiceRequest.FromString(payload)
    flattened, python_only = engine_input.FLATTENED_PREFIXES, engine_input.PYTHON_ONLY_KEYS
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                kept = [kv for kv in span.attributes if not kv.key.startswith(flattened) and kv.key not in python_only]
                del span.attributes[:]
                span.attributes.extend(kept)
                events = [e for e in span.events if e.name not in normalize.LEGACY_MESSAGE_EVENTS]
                del span.events[:]
                span.events.extend(events)
    return request.SerializeToString()


@pytest.mark.parametrize(("name", "payload", "kwargs"), CONVENTIONS + ENGINE, ids=[f[0] for f in CONVENTIONS + ENGINE])
def test_the_engine_stores_what_python_stores(store, name, payload, kwargs):
    tenant = kwargs.get("tenant", "")
    left = EngineNormalizer(store, pricing.cost_usd).store_traces([(tenant, payload)], Retention(), {})
    _read(store)
    if left.python_records:  # what only Python reads is checked by test_normalize; the rest here
        payload = _without_what_only_python_reads(payload)
    request = ExportTraceServiceRequest.FromString(payload)
    nodes, events = normalize_spans(request.resource_spans, **kwargs)
    store.insert_spans(nodes)
    store.insert_events(events)
    python_spans, python_events = _read(store)

    default, tenants = _retention(kwargs, sorted({n.tenant for n in nodes}))
    price = kwargs.get("price", pricing.cost_usd)
    result = EngineNormalizer(store, price).store_traces([(tenant, payload)], default, tenants)
    engine_spans, engine_events = _read(store)

    assert result.python_records == set(), "the engine normalizes these spans itself"
    assert result.spans == len(nodes)
    assert result.batch.runs == runs_seen(nodes)
    assert len(engine_spans) == len(python_spans)
    for python_row, engine_row in zip(python_spans, engine_spans, strict=True):
        for column, python_value, engine_value in zip(rows.SPAN_COLUMNS, python_row, engine_row, strict=True):
            assert _same(python_value, engine_value), (column, _difference(python_value, engine_value))
    assert len(engine_events) == len(python_events)
    content = rows.EVENT_COLUMNS.index("Content")
    for python_event, engine_event in zip(python_events, engine_events, strict=True):
        assert (
            engine_event[:content] + engine_event[content + 1 :] == python_event[:content] + python_event[content + 1 :]
        )
        assert _same_content(python_event[content], engine_event[content])


def _same_content(python: str, engine: str) -> bool:
    """Equal, or the same JSON value: a JSON value inside a message (a tool call's arguments)
    is written by the engine as it reads it (``2.0`` as ``2``), by Python as json.dumps does."""
    if python == engine:
        return True
    try:
        return json.loads(python) == json.loads(engine)
    except ValueError:
        return False


@pytest.mark.clickhouse_http
def test_a_clickhouse_server_normalizes_as_the_embedded_engine(store, http_store, tmp_path):
    """The same statements over a batch sent to a server as insert data (not a file)."""
    payloads = [(f[2].get("tenant", ""), f[1]) for f in CONVENTIONS + ENGINE]
    payloads += [("", payload) for _, payload in _python_only_fixtures()]
    stored = []
    for target in (store, http_store):
        result = EngineNormalizer(target, pricing.cost_usd, str(tmp_path)).store_traces(
            payloads, Retention(7, 3), {"acme": Retention(5, 1)}, dedup_token="same"
        )
        spans, events = _read(target)
        stored.append((result.spans, result.python_records, result.batch.runs, sorted(map(repr, spans + events))))
    assert stored[0][0] > 0 and stored[0][1]  # some records are the engine's, some Python's
    assert stored[0] == stored[1]


@pytest.mark.both_stores
def test_records_with_what_only_python_reads_are_left_to_python_whole(store):
    plain = build_request(1).SerializeToString()
    payloads = [("", plain)] + [("", payload) for _, payload in _python_only_fixtures()]
    result = EngineNormalizer(store, pricing.cost_usd).store_traces(payloads, Retention(), {})
    assert result.python_records == {1, 2, 3}
    assert result.spans == 1000
    spans = store.query(f"SELECT count(), uniqExact(TraceId) FROM {store.table(schema.SPANS)}")
    assert spans == [(1000, 100)]  # the plain record only: nothing of the others


@pytest.mark.both_stores
def test_a_batch_of_many_records_with_tenants(store):
    rng = random.Random(7)
    payloads = []
    request = build_request(1)
    for index in range(5):
        renew_ids(request, rng)
        payloads.append(("acme" if index % 2 else "", request.SerializeToString()))
    result = EngineNormalizer(store, pricing.cost_usd).store_traces(
        payloads, Retention(30, 30), {"acme": Retention(7, 2)}
    )
    assert result.python_records == set() and result.spans == 5000
    by_tenant = store.query(
        f"SELECT Tenant, count(), min(TtlDays), max(PayloadTtlDays) FROM {store.table(schema.SPANS)} GROUP BY Tenant ORDER BY Tenant"  # noqa: E501
    )
    assert by_tenant == [("acme", 2000, 7, 2), ("default", 3000, 30, 30)]


def test_frame_appends_the_record_fields_to_the_request():
    payload = build_request(1).SerializeToString()
    framed = frame(payload, "acme", 300)
    assert framed.endswith(payload + b"\xa2\x06\x04acme\xa8\x06\xac\x02")
    assert normalize.attribute_string(1.0) == "1.0"  # the encoding the engine reproduces


def test_meaningless_token_counts_and_costs_are_not_summed(store):
    """Negative, NaN, infinite and absurd values count as 0 (a stated cost as not stated) on
    both paths, and stay in the raw attributes; the parity test above holds the paths equal."""
    priced = pricing.cost_usd("gpt-4o-mini", 0, 10)
    assert priced > 0
    for values in (MEANINGLESS, MEANINGLESS_DOUBLES):
        nodes, _ = normalize_spans(meaningless_numbers(values).resource_spans)
        calls = [n for n in nodes if n.name.startswith("chat")]
        assert len(calls) == len(values)
        for node in calls:
            assert node.usage.input_tokens == 0 and node.usage.output_tokens == 10, node.name
            assert node.cost_usd == pytest.approx(priced), node.name
            assert GA.GEN_AI_USAGE_INPUT_TOKENS in node.attributes  # the raw value is kept
    request = meaningless_numbers()
    EngineNormalizer(store, pricing.cost_usd).store_traces([("", request.SerializeToString())], Retention(), {})
    rows_ = store.query(
        f"SELECT sum(InputTokens), sum(OutputTokens), sum(CostUsd), min(CostUsd) FROM {store.table(schema.SPANS)} "
        "WHERE startsWith(SpanName, 'chat')"
    )
    (inputs, outputs, cost, cheapest) = rows_[0]
    assert (inputs, outputs) == (0, 10 * len(MEANINGLESS))
    assert cost == pytest.approx(priced * len(MEANINGLESS)) and cheapest >= 0


HOSTILE = ["it's", "back\\slash", "{model:String}", "'); DROP TABLE spans; --", 'é " {}']


def test_names_made_of_quotes_and_sql_are_stored_as_sent(store):
    """Model, agent and tenant names come from clients: they reach the engine as data (the
    staged spans) or bound parameters (a priced model's name, a tenant's retention), never
    spliced into the statement, and are stored as sent."""
    rec = Recorder("svc")
    for name in HOSTILE:
        with rec.span(
            f"invoke_agent {name}",
            **{
                GA.GEN_AI_OPERATION_NAME: "invoke_agent",
                GA.GEN_AI_AGENT_NAME: name,
                semconv.TRACEHOUSE_TENANT: name,
            },
        ):
            chat = {
                GA.GEN_AI_OPERATION_NAME: "chat",
                GA.GEN_AI_REQUEST_MODEL: name,
                GA.GEN_AI_USAGE_INPUT_TOKENS: 1000,
                semconv.TRACEHOUSE_TENANT: name,
            }
            with rec.span("chat", **chat):
                pass
    payload = rec.request().SerializeToString()

    def price(model, *tokens):  # every hostile model has a price: each is looked up by name
        return (HOSTILE.index(model) + 1) * 1e-3 * sum(tokens) if model in HOSTILE else None

    tenants = {name: Retention(i + 1, 1) for i, name in enumerate(HOSTILE)}
    normalizer = EngineNormalizer(store, price)
    statements = []
    run = normalizer._command
    normalizer._command = lambda sql, *args, **kwargs: (statements.append(sql), run(sql, *args, **kwargs))[1]
    result = normalizer.store_traces([("", payload)], Retention(), tenants)
    assert result.python_records == set()
    spliced = [name for name in HOSTILE for sql in statements if name in sql or name.replace("'", "\\'") in sql]
    assert statements and not spliced, spliced
    stored = store.query(
        f"SELECT Tenant, AgentName, Model, TtlDays, CostUsd FROM {store.table(schema.SPANS)} "
        "WHERE NodeType = 'llm' ORDER BY TtlDays"
    )
    assert [(t, m, d) for t, _, m, d, _ in stored] == [(n, n, i + 1) for i, n in enumerate(HOSTILE)]
    # each model's own price, found by its name: 1000 input tokens at (i + 1) / 1000 $ each
    assert [round(cost, 9) for *_, cost in stored] == [i + 1 for i in range(len(HOSTILE))]
    agents = store.query(f"SELECT AgentName FROM {store.table(schema.SPANS)} WHERE RunRoot ORDER BY AgentName")
    _read(store)
    assert [a for (a,) in agents] == sorted(HOSTILE)


def test_another_writers_batch_file_is_left_alone_and_a_crashed_ones_removed(store, tmp_path):
    """Two receivers on one machine share the batch directory: a new normalizer removes only
    the files a crash left (old), not a batch another writer is staging right now."""
    import os
    import time

    live = tmp_path / f"{sql._BATCH_PREFIX}live.bin"
    crashed = tmp_path / f"{sql._BATCH_PREFIX}crashed.bin"
    live.write_bytes(b"x")
    crashed.write_bytes(b"x")
    old = time.time() - sql.STALE_BATCH_SECONDS - 60
    os.utime(crashed, (old, old))
    EngineNormalizer(store, pricing.cost_usd, directory=str(tmp_path))
    assert live.exists() and not crashed.exists()

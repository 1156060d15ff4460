"""OTLP trace payloads normalized inside the ClickHouse engine: the writer's fast path.

The Python normalizer (:mod:`tracehouse.ingest.normalize`) reads every convention; it costs
about 150 microseconds of Python per span. This module does the same work as SQL, in C++, with
the Python interpreter free for the receiver meanwhile (the engine releases the GIL):

1. The batch's spooled export requests are framed, each by its length and followed by two
   fields of its own (the record's tenant and index), so the engine's ``Protobuf`` input
   format reads each as one ``Batch`` message (:data:`SCHEMA`, wire-compatible with the
   ``ExportTraceServiceRequest`` of opentelemetry-proto). An embedded engine reads them from a
   file (with :data:`SCHEMA` written beside it); a ClickHouse server gets them as the data of
   an ``INSERT ... FORMAT Protobuf`` into a temporary table of its session, with the schema as
   a string (``format_schema_source``).
2. One statement parses the batch into a temporary table of spans with their attribute maps
   (values encoded as the Python normalizer encodes them) and a flag for what only the Python
   normalizer reads: flattened messages, per-message events of GenAI before 1.37, Langfuse's
   usage and cost JSON, map or nested array values, floats Python writes in exponent form,
   duplicate keys. A record with a flagged span goes to the Python normalizer, whole.
3. A second statement computes the canonical columns of the other records into another
   temporary table; span rows, replay events and the runs touched are read from it.

Every rule reads the same key tables as the Python normalizer (``normalize.MODEL_KEYS``,
``TOKEN_KEYS``..., and the node types of :mod:`tracehouse.conventions`), so a rule has one home;
tests/test_normalize_sql.py feeds every convention fixture of the normalizer's tests through both
paths and compares the stored rows. Token costs come from the same pricer, asked for each model's
price per token. JSON values inside messages (a tool call's arguments) are stored as the engine
reads them, which may differ from Python's spacing; the values are the same.

Both stores run the same statements, in one session; only where the protobuf comes from
differs. A server older than ``format_schema_source`` (:func:`server_reads_protobuf`) cannot
take a schema from its client: there the writer normalizes in Python.
"""

from __future__ import annotations

import glob
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.exceptions import OperationalError

from tracehouse import conventions, semconv
from tracehouse.ingest import normalize as py
from tracehouse.ingest.engine_rules import compile_rule
from tracehouse.ingest.sql_text import (
    array as _list,
)
from tracehouse.ingest.sql_text import (
    both as _both,
)
from tracehouse.ingest.sql_text import (
    first as _first,
)
from tracehouse.ingest.sql_text import (
    get as _get,
)
from tracehouse.ingest.sql_text import (
    lookup as _lookup,
)
from tracehouse.ingest.sql_text import (
    quote as _q,
)
from tracehouse.model import (
    DEFAULT_TENANT,
    MAX_COST_USD,
    MAX_TTL_DAYS,
    PREVIEW_CHARS,
    EventKind,
    Node,
    NodeType,
    Status,
    Usage,
)
from tracehouse.store import rows, schema
from tracehouse.store.rollups import BatchSpans

SCHEMA = """
syntax = "proto3";
message Scalar {
  optional string s = 1; optional bool b = 2; optional int64 i = 3; optional double d = 4;
  optional bytes arr = 5; optional bytes kv = 6; optional bytes by = 7;
}
message ArrayValue { repeated Scalar values = 1; }
message AnyValue {
  optional string s = 1; optional bool b = 2; optional int64 i = 3; optional double d = 4;
  ArrayValue arr = 5; optional bytes kv = 6; optional bytes by = 7;
}
message KeyValue { string key = 1; AnyValue value = 2; }
message Resource { repeated KeyValue attributes = 1; }
message Scope { string name = 1; string version = 2; }
message Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; }
message Link { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; repeated KeyValue attributes = 4; }
message Status { string message = 2; int32 code = 3; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4;
  string name = 5; int32 kind = 6; fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9; repeated Event events = 11; repeated Link links = 13; Status status = 15;
}
message ScopeSpans { Scope scope = 1; repeated Span spans = 2; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message Batch { repeated ResourceSpans resource_spans = 1; string tenant = 100; uint64 record = 101; }
"""
_TENANT_FIELD = 100
_RECORD_FIELD = 101

_SCALAR = "Tuple(s Nullable(String), b Nullable(Bool), i Nullable(Int64), d Nullable(Float64), arr Nullable(String), kv Nullable(String), by Nullable(String))"  # noqa: E501
_ANY = f"Tuple(s Nullable(String), b Nullable(Bool), i Nullable(Int64), d Nullable(Float64), arr Tuple(values Array({_SCALAR})), kv Nullable(String), by Nullable(String))"  # noqa: E501
_KVS = f"Array(Tuple(key String, value {_ANY}))"
_STRUCTURE = (
    f"resource_spans Array(Tuple(resource Tuple(attributes {_KVS}), scope_spans Array(Tuple("
    "scope Tuple(name String, version String), spans Array(Tuple("
    "trace_id String, span_id String, trace_state String, parent_span_id String, name String, kind Int32, "
    f"start_time_unix_nano UInt64, end_time_unix_nano UInt64, attributes {_KVS}, "
    f"events Array(Tuple(time_unix_nano UInt64, name String, attributes {_KVS})), "
    f"links Array(Tuple(trace_id String, span_id String, trace_state String, attributes {_KVS})), "
    "status Tuple(message String, code Int32))))))), tenant String, record UInt64"
)

_BATCH_PREFIX = "tracehouse-batch-"
STALE_BATCH_SECONDS = 3600
RAW = "tracehouse_ingest_raw"  # session-scoped temporary tables; RAW: a server's batch as sent
STAGE = "tracehouse_ingest_stage"
NORMALIZED = "tracehouse_ingest_normalized"


# --- SQL text helpers: tracehouse.ingest.sql_text ------------------------------------------------


# Python's repr of a float, where it does not use an exponent; the rest are flagged.
def _float_ok(d: str) -> str:
    return f"(isFinite({d}) AND abs({d}) < 1e16 AND ({d} = trunc({d}) OR abs({d}) >= 1e-4))"


def _float_text(d: str) -> str:
    """Python's ``repr`` of a float, for the floats :func:`_float_ok` admits; the others (whose
    records go to Python) get some text, but never an error (``toInt64(inf)`` raises)."""
    return f"if({_float_ok(d)} AND {d} = trunc({d}), concat(toString(toInt64({d})), '.0'), toString({d}))"


def _encoded(v: str, string: str, by: str, rest: str) -> str:
    """A value's text by the member it has set: ``string`` and ``by`` (bytes, as hex) say how
    strings and bytes are written, ``rest`` what follows (more branches and the default)."""
    return (
        f"multiIf({v}.s IS NOT NULL, {string}, "
        f"{v}.b IS NOT NULL, if(assumeNotNull({v}.b), 'true', 'false'), "
        f"{v}.i IS NOT NULL, toString(assumeNotNull({v}.i)), "
        f"{v}.d IS NOT NULL, {_float_text(f'assumeNotNull({v}.d)')}, "
        f"{v}.by IS NOT NULL, {by}, {rest})"
    )


def _scalar_json(v: str) -> str:
    """An array element as json.dumps writes it."""
    return _encoded(
        v, f"toJSONString(assumeNotNull({v}.s))", f"concat('\"', lower(hex(assumeNotNull({v}.by))), '\"')", "'null'"
    )


def _value(v: str) -> str:
    """An attribute value as ``normalize.attribute_string`` writes it."""
    array = f"concat('[', arrayStringConcat(arrayMap(x -> {_scalar_json('x')}, {v}.arr.values), ','), ']')"
    rest = f"{v}.kv IS NOT NULL, '', {array}"  # a map value: for Python (flagged)
    return _encoded(v, f"assumeNotNull({v}.s)", f"lower(hex(assumeNotNull({v}.by)))", rest)


def _odd_float(v: str) -> str:
    return f"({v}.d IS NOT NULL AND NOT {_float_ok(f'assumeNotNull({v}.d)')})"


def _odd_value(v: str) -> str:
    """A value only the Python normalizer encodes right."""
    return (
        f"({v}.kv IS NOT NULL OR {_odd_float(v)} OR "
        f"arrayExists(x -> x.arr IS NOT NULL OR x.kv IS NOT NULL OR {_odd_float('x')}, {v}.arr.values))"
    )


def _map(kvs: str) -> str:
    return f"mapFromArrays(arrayMap(a -> a.key, {kvs}), arrayMap(a -> {_value('a.value')}, {kvs}))"


def _odd_attributes(kvs: str) -> str:
    return f"(arrayExists(a -> {_odd_value('a.value')}, {kvs}) OR length(arrayDistinct(arrayMap(a -> a.key, {kvs}))) != length({kvs}))"  # noqa: E501


# --- JSON messages (the GenAI shape) --------------------------------------------------------------


def _json_list(expr: str) -> str:
    """``normalize._json`` found a list."""
    return f"(startsWith({expr}, '[') AND isValidJSON({expr}) AND JSONType({expr}) = 'Array')"


def _content(part: str, key: str) -> str:
    """``attribute_string(part.get(key, ""))``; JSON values keep the text they came with."""
    return (
        f"multiIf(JSONType({part}, {_q(key)}) = 'String', JSONExtractString({part}, {_q(key)}), "
        f"JSONType({part}, {_q(key)}) = 'Null', '', JSONExtractRaw({part}, {_q(key)}))"
    )


def _part_type(part: str) -> str:
    return f"JSONExtractString({part}, 'type')"


def _texts(message: str) -> str:
    return f"arrayMap(p -> {_content('p', 'content')}, arrayFilter(p -> {_part_type('p')} = 'text', JSONExtractArrayRaw({message}, 'parts')))"  # noqa: E501


def _messages_text(expr: str) -> str:
    """``normalize._messages_text``."""
    texts = f"arrayFlatten(arrayMap(m -> {_texts('m')}, JSONExtractArrayRaw({expr})))"
    return f"if({_json_list(expr)} AND notEmpty({texts}), arrayStringConcat({texts}, '\\n'), {expr})"


def _system_text(expr: str) -> str:
    """``normalize._system_text``."""
    parts = f"arrayFilter(p -> JSONType(p) = 'Object', JSONExtractArrayRaw({expr}))"
    return (
        f"if({_json_list(expr)}, arrayStringConcat(arrayMap(p -> {_content('p', 'content')}, {parts}), '\\n'), {expr})"  # noqa: E501
    )


def _preview(expr: str) -> str:
    """``model.preview``."""
    flat = f"arrayStringConcat(splitByWhitespace({expr}), ' ')"
    return (
        f"if(lengthUTF8({flat}) <= {PREVIEW_CHARS}, {flat}, concat(substringUTF8({flat}, 1, {PREVIEW_CHARS - 1}), '…'))"
    )


_EMPTY_MAP = "CAST(map(), 'Map(String, String)')"
_NONE = "''"


def _event(kind: str, when: str, role: str = "''", name: str = "''", content: str = "''", call: str = "''",
           attrs: str = _EMPTY_MAP) -> str:  # fmt: skip
    return f"tuple({kind}, {when}, {role}, {name}, {content}, {call}, {attrs})"


def _message_events(message: str, when: str) -> str:
    """``normalize._message_events`` of one message: its reasoning, tool calls and results, then
    its text."""
    role = f"JSONExtractString({message}, 'role')"
    typ = _part_type("p")
    part_event = _event(
        f"multiIf({typ} = 'reasoning', {_q(EventKind.REASONING)}, {typ} = 'tool_call', {_q(EventKind.TOOL_CALL)}, "
        f"{_q(EventKind.TOOL_RESULT)})",
        when,
        role,
        f"if({typ} = 'tool_call', JSONExtractString(p, 'name'), '')",
        f"multiIf({typ} = 'reasoning', {_content('p', 'content')}, {typ} = 'tool_call', {_content('p', 'arguments')}, "
        f"{_content('p', 'response')})",
        f"if({typ} = 'reasoning', '', JSONExtractString(p, 'id'))",
    )
    parts = f"arrayFilter(p -> {typ} IN ('reasoning', 'tool_call', 'tool_call_response'), JSONExtractArrayRaw({message}, 'parts'))"  # noqa: E501
    finish = f"JSONExtractString({message}, 'finish_reason')"
    text_event = _event(
        _q(EventKind.MESSAGE),
        when,
        role,
        content=f"arrayStringConcat({_texts(message)}, '\\n')",
        attrs=f"if({finish} != '', map('finish_reason', {finish}), {_EMPTY_MAP})",
    )
    return f"arrayConcat(arrayMap(p -> {part_event}, {parts}), if(notEmpty({_texts(message)}), [{text_event}], []))"


# --- the statements ------------------------------------------------------------------------------

# What only the Python normalizer reads: flattened messages, per-message events (above them in
# normalize), and Langfuse's usage and cost JSON.
_FLATTENED_PREFIXES = tuple(prefix + "." for prefix, _, _ in (*py.FLATTENED_INPUTS, *py.FLATTENED_OUTPUTS))
_PYTHON_ONLY_KEYS = (semconv.LANGFUSE_OBSERVATION_USAGE_DETAILS, semconv.LANGFUSE_OBSERVATION_COST_DETAILS)


def _file_source(path: str, schema_path: str) -> tuple[str, str]:
    """The batch as an embedded engine reads it: a file, and the settings that read it."""
    return f"file({_q(path)}, 'Protobuf', {_q(_STRUCTURE)})", (
        f"format_schema = {_q(schema_path + ':Batch')}, input_format_parallel_parsing = 0"
    )


# The settings a server reads a batch's protobuf with, as the data of an insert into RAW.
SERVER_PROTOBUF_SETTINGS = {
    "format_schema_source": "string",
    "format_schema": SCHEMA,
    "format_schema_message_name": "Batch",
    "input_format_parallel_parsing": 0,
}


def server_reads_protobuf(client: Any) -> bool:
    """Whether a ClickHouse server takes a Protobuf schema from its client (as a string): the
    engine path's condition there."""
    return "format_schema_source" in (getattr(client, "server_settings", None) or {})


def _stage_sql(source: str, settings: str) -> str:
    keys = "arrayMap(a -> a.key, s.attributes)"
    prefixes = " OR ".join(f"startsWith(k, {_q(p)})" for p in _FLATTENED_PREFIXES)
    python_only = (
        f"{_odd_attributes('s.attributes')} OR {_odd_attributes('rs.resource.attributes')} OR "
        f"arrayExists(k -> {prefixes} OR has({_list(_PYTHON_ONLY_KEYS)}, k), {keys}) OR "
        f"arrayExists(e -> has({_list(py.LEGACY_MESSAGE_EVENTS)}, e.name) OR {_odd_attributes('e.attributes')}, s.events) OR "  # noqa: E501
        f"arrayExists(l -> {_odd_attributes('l.attributes')}, s.links)"
    )
    return f"""
CREATE TEMPORARY TABLE {STAGE} ENGINE = Memory AS
SELECT
    toUInt32(record) AS record, tenant AS transport_tenant,
    {_map("rs.resource.attributes")} AS res, ss.scope.name AS scope_name, ss.scope.version AS scope_version,
    s.trace_id AS trace_id, s.span_id AS span_id, s.parent_span_id AS parent_span_id, s.trace_state AS trace_state,
    s.name AS name, s.kind AS kind, s.start_time_unix_nano AS start_ns, s.end_time_unix_nano AS end_ns,
    {_map("s.attributes")} AS attrs,
    arrayMap(e -> e.time_unix_nano, s.events) AS event_ns, arrayMap(e -> e.name, s.events) AS event_names,
    arrayMap(e -> {_map("e.attributes")}, s.events) AS event_attrs,
    arrayMap(l -> lower(hex(l.trace_id)), s.links) AS link_trace_ids, arrayMap(l -> lower(hex(l.span_id)), s.links) AS link_span_ids,
    arrayMap(l -> l.trace_state, s.links) AS link_states, arrayMap(l -> {_map("l.attributes")}, s.links) AS link_attrs,
    s.status.code AS status_code, s.status.message AS status_message,
    ({python_only}) AS python_only
FROM {source}
ARRAY JOIN resource_spans AS rs
ARRAY JOIN rs.scope_spans AS ss
ARRAY JOIN ss.spans AS s
SETTINGS {settings + ", " if settings else ""}output_format_json_escape_forward_slashes = 0
"""  # noqa: E501


def _ttl(raw: str, default: str) -> str:
    """``normalize._ttl``."""
    days = f"toFloat64OrNull({raw})"
    return f"if({days} IS NULL OR NOT isFinite(assumeNotNull({days})), {default}, least(greatest(toInt64(trunc(assumeNotNull({days}))), 1), {MAX_TTL_DAYS}))"  # noqa: E501


@dataclass(frozen=True)
class Prices:
    """Per-token prices of the models of a batch: input, output, a cached input token, a cache
    write token (its extra over an input token), as the pricer computes them."""

    models: dict[str, tuple[float, float, float, float]]

    @classmethod
    def ask(cls, models: Iterable[str], price: py.Pricer) -> Prices:
        found = {}
        for model in models:
            per_input = price(model, 1, 0, 0, 0) if model else None
            if per_input is not None:
                found[model] = (
                    per_input,
                    price(model, 0, 1, 0, 0) or 0.0,
                    price(model, 1, 0, 1, 0) or 0.0,
                    price(model, 0, 0, 0, 1) or 0.0,
                )
        return cls(found)

    def cost(self, model: str, index: int) -> str:
        """The price per token of ``model`` (a column): the models' names, from the spans, are
        bound parameters (:meth:`parameters`), never SQL text."""
        return f"transform({model}, {{price_models:Array(String)}}, {{price_{index}:Array(Float64)}}, 0.)"

    def parameters(self) -> dict[str, Any]:
        found: dict[str, Any] = {"price_models": list(self.models)}
        for index in range(4):
            found[f"price_{index}"] = [p[index] for p in self.models.values()]
        return found


def _tenant_days(tenants: Mapping[str, py.Retention]) -> dict[str, Any]:
    """The tenants' retention, bound like the prices (a tenant's name is a client's value)."""
    return {
        "ttl_tenants": list(tenants),
        "ttl_days": [r.ttl_days for r in tenants.values()],
        "payload_ttl_days": [r.payload_ttl_days for r in tenants.values()],
    }


def _layer(columns: Mapping[str, str]) -> str:
    return ",\n        ".join(f"{expr} AS {name}" for name, expr in columns.items())


def _normalize_sql(retention: py.Retention, tenants: Mapping[str, py.Retention], prices: Prices, where: str) -> str:
    """The canonical columns of the staged spans, in three layers: the engine's analyzer
    expands an alias at every use, so what many columns read (node type, run root, input) is
    computed in a layer below them and read as a column."""
    operation = _get("attrs", semconv.GEN_AI_OPERATION_NAME)
    tenant_ttl = (
        f"transform(Tenant, {{ttl_tenants:Array(String)}}, {{ttl_days:Array(Int64)}}, {int(retention.ttl_days)})"
    )
    input_messages = _get("attrs", semconv.GEN_AI_INPUT_MESSAGES)
    output_messages = _get("attrs", semconv.GEN_AI_OUTPUT_MESSAGES)
    exception_at = f"indexOf(event_names, {_q(semconv.EXCEPTION_EVENT)})"
    payload = f"(has({_list(sorted(semconv.PAYLOAD_ATTRIBUTES))}, k) OR {' OR '.join(f'startsWith(k, {_q(p)})' for p in semconv.PAYLOAD_PREFIXES)})"  # noqa: E501
    first = {
        "Timestamp": "fromUnixTimestamp64Nano(toInt64(intDiv(start_ns, 1000) * 1000))",
        "TraceId": "lower(hex(trace_id))",
        "NodeType": compile_rule(conventions.NODE_TYPE),
        "ExplicitRun": _both(semconv.TRACEHOUSE_RUN_ID),
        "exception": f"if({exception_at} > 0, event_attrs[{exception_at}], {_EMPTY_MAP})",
        "Duration": "if(end_ns > start_ns, end_ns - start_ns, 0)",
        "Status": compile_rule(conventions.STATUS),
        "Tenant": f"coalesce(nullIf(transport_tenant, ''), nullIf({_both(semconv.TRACEHOUSE_TENANT)}, ''), {_q(DEFAULT_TENANT)})",  # noqa: E501
        "has_inputs": f"({_json_list(input_messages)} AND JSONLength({input_messages}) > 0)",
        "has_outputs": f"({_json_list(output_messages)} AND JSONLength({output_messages}) > 0)",
        # Read by more than one rule below: computed once here (an alias is expanded at each use).
        "root_input": _first("attrs", py.ROOT_INPUT_KEYS),
        "node_input": _first("attrs", py.INPUT_KEYS),
        "root_output": _first("attrs", py.ROOT_OUTPUT_KEYS),
        "node_output": _first("attrs", py.OUTPUT_KEYS),
    }
    second = {
        "RunId": "if(ExplicitRun != '', ExplicitRun, TraceId)",
        "RunRoot": f"if(ExplicitRun != '', {operation} = {_q(semconv.OP_INVOKE_AGENT)} AND NOT mapContains(attrs, {_q(semconv.TRACEHOUSE_NODE_TYPE)}), parent_span_id = '')",  # noqa: E501
        "llm_messages": f"NodeType = {_q(NodeType.LLM)} AND (has_inputs OR has_outputs)",
        "InputMessages": f"if(llm_messages AND has_inputs, {input_messages}, '')",
        "OutputMessages": f"if(llm_messages AND has_outputs, {output_messages}, '')",
    }
    third = {
        "Input": f"multiIf(llm_messages, InputMessages, RunRoot AND root_input != '', root_input, "
        f"NOT RunRoot AND node_input != '', node_input, {_messages_text(input_messages)})",
        "Output": f"multiIf(llm_messages, OutputMessages, RunRoot AND root_output != '', root_output, "
        f"NOT RunRoot AND node_output != '', node_output, {_messages_text(output_messages)})",
        "AgentName": compile_rule(conventions.AGENT),
        "TtlDays": f"toUInt16({_ttl(_both(semconv.TRACEHOUSE_TTL_DAYS), tenant_ttl)})",
        "InputTokens": compile_rule(conventions.TOKENS["input_tokens"]),
        "OutputTokens": compile_rule(conventions.TOKENS["output_tokens"]),
        "CacheReadTokens": compile_rule(conventions.TOKENS["cache_read_tokens"]),
        "CacheCreationTokens": compile_rule(conventions.TOKENS["cache_creation_tokens"]),
        "ReasoningTokens": compile_rule(conventions.TOKENS["reasoning_tokens"]),
        "Model": compile_rule(conventions.MODEL),
        "StatedCost": f"toFloat64OrNull({_first('attrs', py.COST_KEYS)})",
    }
    cached = "least(CacheReadTokens, InputTokens)"
    priced = (
        f"(InputTokens - {cached}) * {prices.cost('Model', 0)} + OutputTokens * {prices.cost('Model', 1)} + "
        f"{cached} * {prices.cost('Model', 2)} + CacheCreationTokens * {prices.cost('Model', 3)}"
    )
    last = {
        "record": "record",
        "Timestamp": "Timestamp",
        "TraceId": "TraceId",
        "SpanId": "lower(hex(span_id))",
        "ParentSpanId": "lower(hex(parent_span_id))",
        "TraceState": "trace_state",
        "SpanName": "name",
        "SpanKind": _lookup("toInt64(kind)", py.SPAN_KINDS, "Unspecified"),
        "ServiceName": f"res[{_q(semconv.SERVICE_NAME)}]",
        "ResourceAttributes": "res",
        "ScopeName": "scope_name",
        "ScopeVersion": "scope_version",
        "SpanAttributes": f"mapFilter((k, v) -> NOT {payload}, attrs)",
        "Duration": "Duration",
        "StatusCode": _lookup("toInt64(status_code)", py.STATUS_CODES, "Unset"),
        "StatusMessage": f"if(status_message != '', status_message, exception[{_q(semconv.EXCEPTION_MESSAGE)}])",
        "EventTimestamps": "arrayMap(t -> fromUnixTimestamp64Nano(toInt64(intDiv(t, 1000) * 1000)), event_ns)",
        "EventNames": "event_names",
        "EventAttributes": "event_attrs",
        "LinkTraceIds": "link_trace_ids",
        "LinkSpanIds": "link_span_ids",
        "LinkStates": "link_states",
        "LinkAttributes": "link_attrs",
        "Tenant": "Tenant",
        "RunId": "RunId",
        "ParentRunId": f"if(RunRoot, {_both(semconv.TRACEHOUSE_PARENT_RUN_ID)}, '')",
        "RunRoot": "RunRoot",
        "NodeType": "NodeType",
        "Status": "Status",
        "OperationName": compile_rule(conventions.OPERATION),
        "AgentName": "AgentName",
        "ConversationId": compile_rule(conventions.CONVERSATION),
        "UserId": compile_rule(conventions.USER),
        "Model": "Model",
        "Provider": compile_rule(conventions.PROVIDER),
        "InputTokens": "InputTokens",
        "OutputTokens": "OutputTokens",
        "CacheReadTokens": "CacheReadTokens",
        "CacheCreationTokens": "CacheCreationTokens",
        "ReasoningTokens": "ReasoningTokens",
        # normalize._stated_cost: NaN fails BETWEEN, as it fails Python's comparisons
        "CostUsd": f"multiIf(ifNull(StatedCost BETWEEN 0 AND {MAX_COST_USD}, false), assumeNotNull(StatedCost), "
        f"NodeType = {_q(NodeType.LLM)} AND Model != '', {priced}, 0.)",
        "ErrorType": f"coalesce(nullIf({_get('attrs', semconv.ERROR_TYPE)}, ''), nullIf(exception[{_q(semconv.EXCEPTION_TYPE)}], ''), "  # noqa: E501
        f"if(Status = {_q(Status.FAILED)}, 'Error', ''))",
        "LlmMessages": "llm_messages",  # Input and Output are then the messages JSON
        "SystemInstructions": f"if(NodeType = {_q(NodeType.LLM)}, {_get('attrs', semconv.GEN_AI_SYSTEM_INSTRUCTIONS)}, '')",  # noqa: E501
        "Input": "Input",
        "Output": "Output",
        "InputPreview": _preview("Input"),
        "OutputPreview": _preview("Output"),
        "PayloadAttributes": f"mapFilter((k, v) -> {payload}, attrs)",
        "TtlDays": "TtlDays",
        "PayloadTtlDays": f"toUInt16(least(TtlDays, transform(Tenant, {{ttl_tenants:Array(String)}}, {{payload_ttl_days:Array(Int64)}}, {int(retention.payload_ttl_days)})))",  # noqa: E501
        "ToolName": compile_rule(conventions.TOOL_NAME),
        "ToolCallId": compile_rule(conventions.TOOL_CALL_ID),
        "EndedAt": "fromUnixTimestamp64Nano(toInt64(intDiv(start_ns, 1000) * 1000) + toInt64(roundBankers(Duration / 1000)) * 1000)",  # noqa: E501
    }
    return f"""
CREATE TEMPORARY TABLE {NORMALIZED} ENGINE = Memory AS
SELECT
        {_layer(last)}
FROM (
    SELECT *,
        {_layer(third)}
    FROM (
        SELECT *,
        {_layer(second)}
        FROM (
            SELECT *,
        {_layer(first)}
            FROM {STAGE}
            WHERE {where}
        )
    )
)
"""


def _events_sql() -> str:
    """``normalize._replay_events`` for every normalized span."""
    inputs = "if(LlmMessages AND Input != '', JSONExtractArrayRaw(Input), [])"
    outputs = "if(LlmMessages AND Output != '', JSONExtractArrayRaw(Output), [])"
    last_assistant = f"arrayLastIndex(m -> JSONExtractString(m, 'role') = 'assistant', {inputs})"
    system = _event(_q(EventKind.MESSAGE), "Timestamp", "'system'", content=_system_text("SystemInstructions"))
    llm = (
        f"arrayConcat(if(SystemInstructions != '' AND {last_assistant} = 0, [{system}], []), "
        f"arrayFlatten(arrayMap(m -> {_message_events('m', 'Timestamp')}, "
        f"arraySlice({inputs}, {last_assistant} + 1))), "
        f"arrayFlatten(arrayMap(m -> {_message_events('m', 'EndedAt')}, {outputs})))"
    )
    tool = (
        f"arrayConcat([{_event(_q(EventKind.TOOL_CALL), 'Timestamp', name='ToolName', content='Input', call='ToolCallId')}], "  # noqa: E501
        f"if(Status = {_q(Status.COMPLETED)}, [{_event(_q(EventKind.TOOL_RESULT), 'EndedAt', name='ToolName', content='Output', call='ToolCallId')}], []))"  # noqa: E501
    )
    data = _q(semconv.TRACEHOUSE_EVENT_DATA)
    from_span_events = (
        "arrayFilter(e -> e.1 != '', arrayMap((n, t, a) -> multiIf("
        f"n = {_q(semconv.EVENT_TRACEHOUSE_CHECKPOINT)}, {_event(_q(EventKind.CHECKPOINT), 't', name=_get('a', semconv.TRACEHOUSE_CHECKPOINT_ID), content=_get('a', semconv.TRACEHOUSE_CHECKPOINT_STATE))}, "  # noqa: E501
        f"n = {_q(semconv.EVENT_TRACEHOUSE_APPROVAL)}, {_event(_q(EventKind.APPROVAL), 't', name='n', content=f'a[{data}]')}, "  # noqa: E501
        f"mapContains(a, {data}), {_event(_q(EventKind.CUSTOM), 't', name='n', content=f'a[{data}]')}, "
        f"{_event(_NONE, 't')}), EventNames, EventTimestamps, EventAttributes))"
    )
    events = (
        f"arrayConcat(multiIf(NodeType = {_q(NodeType.LLM)}, {llm}, NodeType = {_q(NodeType.TOOL)}, {tool}, []), "
        f"{from_span_events})"
    )
    return f"""
INSERT INTO $events ({", ".join(rows.EVENT_COLUMNS)})
SELECT Tenant, RunId, ConversationId, TraceId, SpanId, toUInt32(n - 1), e.2, e.1, e.3, e.4, e.5, e.6, e.7, TtlDays, PayloadTtlDays
FROM (SELECT *, {events} AS all_events FROM {NORMALIZED})
ARRAY JOIN all_events AS e, arrayEnumerate(all_events) AS n
"""  # noqa: E501


_SPAN_SELECT = {
    "Events.Timestamp": "EventTimestamps",
    "Events.Name": "EventNames",
    "Events.Attributes": "EventAttributes",
    "Links.TraceId": "LinkTraceIds",
    "Links.SpanId": "LinkSpanIds",
    "Links.TraceState": "LinkStates",
    "Links.Attributes": "LinkAttributes",
}


def _spans_sql() -> str:
    columns = ", ".join(f"`{c}`" for c in rows.SPAN_COLUMNS)
    select = ", ".join(_SPAN_SELECT.get(c, c) for c in rows.SPAN_COLUMNS)
    return f"INSERT INTO $spans ({columns}) SELECT {select} FROM {NORMALIZED}"


# --- the batch -------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def frame(payload: bytes, tenant: str, record: int) -> bytes:
    """One export request as a length-delimited ``Batch`` message: protobuf merges concatenated
    messages, so the record's own fields are appended to the request as it was spooled."""
    tenant_bytes = tenant.encode()
    message = (
        payload
        + _varint(_TENANT_FIELD << 3 | 2)
        + _varint(len(tenant_bytes))
        + tenant_bytes
        + _varint(_RECORD_FIELD << 3)
        + _varint(record)
    )
    return _varint(len(message)) + message


class EngineCannotRead(Exception):
    """The engine could not parse the batch (valid protobuf it does not read, such as unknown
    fields of the deprecated group type): the batch is for the Python normalizer."""


@dataclass
class Result:
    """What the engine stored, and what it left to the Python normalizer."""

    spans: int
    python_records: set[int]  # indexes of the payloads to normalize in Python
    live: list[Node]  # light nodes for batch listeners, when asked for
    # The span rows stored and the runs touched (each with its earliest start), for the run
    # refresh, until :meth:`EngineNormalizer.release`.
    batch: BatchSpans


class EngineNormalizer:
    """Runs the statements above for one store: an embedded one reads each batch from a file,
    a ClickHouse server from the data of an insert in the store's session."""

    def __init__(self, store: Any, price: py.Pricer, directory: str | None = None):
        self.store = store
        self.price = price
        self.server = not store.address.embedded
        self.directory = directory or tempfile.gettempdir()
        self._events = _events_sql().replace("$events", store.table(schema.EVENTS))
        self._spans = _spans_sql().replace("$spans", store.table(schema.SPANS))
        if self.server:
            return
        # Batch files left by a crash; another writer's (another receiver on this machine, whose
        # batch lives for seconds) are younger than STALE_BATCH_SECONDS and are left alone.
        for stale in glob.glob(os.path.join(self.directory, _BATCH_PREFIX + "*")):
            try:
                if time.time() - os.path.getmtime(stale) > STALE_BATCH_SECONDS:
                    os.unlink(stale)
            except FileNotFoundError:  # its writer removed it meanwhile
                pass
        # The schema as a file beside the batches (an inline schema would be cached by the engine
        # in the working directory).
        self.schema_path = os.path.abspath(os.path.join(self.directory, "tracehouse-otlp.proto"))
        with open(self.schema_path, "w") as f:
            f.write(SCHEMA)

    def _command(
        self, sql: str, settings: dict[str, Any] | None = None, parameters: dict[str, Any] | None = None
    ) -> None:
        self.store.client.command(sql, parameters=parameters, settings=settings)

    def store_traces(
        self,
        payloads: Sequence[tuple[str, bytes]],
        retention: py.Retention,
        tenants: Mapping[str, py.Retention],
        *,
        dedup_token: str | None = None,
        live: bool = False,
    ) -> Result:
        """Normalize and insert ``(tenant, export request bytes)`` payloads; those the engine
        leaves to Python are named in the result, nothing of them is stored. The stored span
        rows stay in a temporary table (``Result.batch``) for the run refresh: call
        :meth:`release` after it. Raises :class:`EngineCannotRead`, having stored nothing, when
        the engine cannot parse them."""
        if self.server:
            self._stage_on_server(payloads)
        else:
            self._stage_from_file(payloads)
        try:
            python_records = {r for (r,) in self.store.query(f"SELECT DISTINCT record FROM {STAGE} WHERE python_only")}
            # A record is normalized by one path, whole.
            engine_rows = f"record NOT IN ({', '.join(map(str, sorted(python_records)))})" if python_records else "1"
            models = [m for (m,) in self.store.query(self._models_sql(engine_rows))]
            prices = Prices.ask(models, self.price)
            self._command(
                _normalize_sql(retention, tenants, prices, engine_rows),
                parameters={**prices.parameters(), **_tenant_days(tenants)},
            )
            self._command(f"DROP TEMPORARY TABLE {STAGE}")  # its memory is free for the inserts
            token = (
                (lambda kind: {"insert_deduplication_token": f"{dedup_token}:{kind}"})
                if dedup_token
                else (lambda kind: None)
            )
            self._command(self._spans, token("sql-spans"))
            self._command(self._events, token("sql-events"))
            runs = {
                (tenant, run_id): rows.from_ns(rows.ns(started))  # aware UTC, as the Python path's
                for tenant, run_id, started in self.store.query(
                    f"SELECT Tenant, RunId, min(Timestamp) FROM {NORMALIZED} WHERE RunId != '' GROUP BY Tenant, RunId"
                )
            }
            spans = self.store.query(f"SELECT count() FROM {NORMALIZED}")[0][0]
            return Result(spans, python_records, self._live() if live else [], BatchSpans(NORMALIZED, runs))
        except BaseException:
            self.release()
            raise

    def _stage_from_file(self, payloads: Sequence[tuple[str, bytes]]) -> None:
        fd, path = tempfile.mkstemp(prefix=_BATCH_PREFIX, suffix=".bin", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                for index, (tenant, payload) in enumerate(payloads):
                    f.write(frame(payload, tenant, index))
            self.release()
            try:
                self._command(_stage_sql(*_file_source(path, self.schema_path)))
            except Exception as exc:
                raise EngineCannotRead(str(exc)) from exc
        finally:
            os.unlink(path)

    def _stage_on_server(self, payloads: Sequence[tuple[str, bytes]]) -> None:
        """The batch as the data of an insert into a temporary table of the session (the server
        cannot read the client's files), then the same staging statement over that table."""
        data = b"".join(frame(payload, tenant, index) for index, (tenant, payload) in enumerate(payloads))
        self.release()
        self._command(f"CREATE TEMPORARY TABLE {RAW} ({_STRUCTURE}) ENGINE = Memory")
        try:
            self.store.client.raw_insert(RAW, insert_block=data, fmt="Protobuf", settings=SERVER_PROTOBUF_SETTINGS)
            self._command(_stage_sql(RAW, ""))
        except OperationalError:
            raise  # the server is unreachable or timed out: the writer retries the batch
        except Exception as exc:
            raise EngineCannotRead(str(exc)) from exc
        self._command(f"DROP TEMPORARY TABLE {RAW}")

    def _models_sql(self, engine_rows: str) -> str:
        return f"SELECT DISTINCT {compile_rule(conventions.MODEL)} AS model FROM {STAGE} WHERE {engine_rows} AND model != ''"  # noqa: E501

    def _live(self) -> list[Node]:
        columns = (
            "Tenant, RunId, RunRoot, AgentName, Timestamp, SpanId, SpanName, NodeType, Status, Duration, Model, "
            "InputTokens, OutputTokens, CostUsd, StatusMessage"
        )
        nodes = []
        for row in self.store.query(f"SELECT {columns} FROM {NORMALIZED}"):
            tenant, run_id, root, agent, started, span_id, name, kind, status, duration, model, it, ot, cost, msg = row
            nodes.append(
                Node.model_construct(
                    tenant=tenant,
                    run_id=run_id,
                    run_root=bool(root),
                    agent_name=agent,
                    started_at=rows.from_ns(rows.ns(started)),
                    span_id=span_id,
                    name=name,
                    type=NodeType(kind),
                    status=Status(status),
                    duration_ns=duration,
                    model=model,
                    usage=Usage.model_construct(input_tokens=it, output_tokens=ot),
                    cost_usd=cost,
                    status_message=msg,
                )
            )
        return nodes

    def release(self) -> None:
        """Drop the batch's tables: after the runs it touched are refreshed (``Result.batch``)."""
        for table in (RAW, STAGE, NORMALIZED) if self.server else (STAGE, NORMALIZED):
            self._command(f"DROP TEMPORARY TABLE IF EXISTS {table}")

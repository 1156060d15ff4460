"""What the engine reads a batch of spooled OTLP trace requests as, and the statement that
stages it: the input schema of the engine normalizer (:mod:`tracehouse.ingest.normalize_sql`).

Each spooled export request is framed (:func:`frame`) by its length and followed by two fields
of its own (the record's tenant and index), so the engine's ``Protobuf`` input format reads each
as one ``Batch`` message (:data:`SCHEMA`, wire-compatible with the ``ExportTraceServiceRequest``
of opentelemetry-proto) of the :data:`STRUCTURE` below. The staging statement
(:func:`stage_statement`) parses them into a temporary table of spans, :data:`STAGE`, with
their attribute maps (values encoded as ``normalize.attribute_string`` writes them) and a flag
for what only the Python normalizer reads: flattened messages, per-message events of GenAI
before 1.37, Langfuse's usage and cost JSON, map or nested array values, floats Python writes
in exponent form, duplicate keys.
"""

from __future__ import annotations

from typing import Any

from tracehouse import semconv
from tracehouse.ingest import normalize as py
from tracehouse.ingest.sql_text import array, quote

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
STRUCTURE = (
    f"resource_spans Array(Tuple(resource Tuple(attributes {_KVS}), scope_spans Array(Tuple("
    "scope Tuple(name String, version String), spans Array(Tuple("
    "trace_id String, span_id String, trace_state String, parent_span_id String, name String, kind Int32, "
    f"start_time_unix_nano UInt64, end_time_unix_nano UInt64, attributes {_KVS}, "
    f"events Array(Tuple(time_unix_nano UInt64, name String, attributes {_KVS})), "
    f"links Array(Tuple(trace_id String, span_id String, trace_state String, attributes {_KVS})), "
    "status Tuple(message String, code Int32))))))), tenant String, record UInt64"
)

STAGE = "tracehouse_ingest_stage"  # a session-scoped temporary table


# --- attribute values, as the Python normalizer encodes them ----------------------------------------


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
    as_list = f"concat('[', arrayStringConcat(arrayMap(x -> {_scalar_json('x')}, {v}.arr.values), ','), ']')"
    rest = f"{v}.kv IS NOT NULL, '', {as_list}"  # a map value: for Python (flagged)
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


# --- the staging statement -------------------------------------------------------------------------

# What only the Python normalizer reads: flattened messages, per-message events (above them in
# normalize), and Langfuse's usage and cost JSON.
FLATTENED_PREFIXES = tuple(prefix + "." for prefix, _, _ in (*py.FLATTENED_INPUTS, *py.FLATTENED_OUTPUTS))
PYTHON_ONLY_KEYS = (semconv.LANGFUSE_OBSERVATION_USAGE_DETAILS, semconv.LANGFUSE_OBSERVATION_COST_DETAILS)


def file_source(path: str, schema_path: str) -> tuple[str, str]:
    """The batch as an embedded engine reads it: a file, and the settings that read it."""
    return f"file({quote(path)}, 'Protobuf', {quote(STRUCTURE)})", (
        f"format_schema = {quote(schema_path + ':Batch')}, input_format_parallel_parsing = 0"
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


def stage_statement(source: str, settings: str) -> str:
    keys = "arrayMap(a -> a.key, s.attributes)"
    prefixes = " OR ".join(f"startsWith(k, {quote(p)})" for p in FLATTENED_PREFIXES)
    python_only = (
        f"{_odd_attributes('s.attributes')} OR {_odd_attributes('rs.resource.attributes')} OR "
        f"arrayExists(k -> {prefixes} OR has({array(PYTHON_ONLY_KEYS)}, k), {keys}) OR "
        f"arrayExists(e -> has({array(py.LEGACY_MESSAGE_EVENTS)}, e.name) OR {_odd_attributes('e.attributes')}, s.events) OR "  # noqa: E501
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

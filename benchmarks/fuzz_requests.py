"""Requests that try to break the OTLP receiver, and the client that sends them to a real
`tracehouse serve` and judges its answers.

The generators are structure-aware: they build OTLP trace and logs requests field by field,
choosing at each field between the ordinary and what exporters rarely or never send (ids of the
wrong length or all zero; times at 0, in the far past and future, near 2^64, ending before they
start; every attribute value type with its extremes, values nested hundreds deep, thousands of
attributes or spans, spans on hundreds of different days; GenAI token counts that are negative,
NaN, infinite, 1e30, 2^63-1 or text). They are encoded as protobuf or OTLP/JSON, gzip'd or not.
Hand-made JSON says what protobuf cannot (nesting past its recursion limit, wrong types, numbers
as strings, invalid hex ids, truncated documents), and mutations flip, insert and delete bytes
of valid requests.

Every choice comes from a :class:`Source`: hypothesis's draws in ``tests/test_fuzz.py`` (so a
failure shrinks to a small request) or a seeded ``random.Random`` in ``benchmarks/fuzz.py`` (so
a long run is fast and any case can be made again from its seed and number).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.client
import json
import math
import random
import re
import struct
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import grpc
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tracehouse import semconv

T = TypeVar("T")

DAY_NS = 86_400 * 10**9
U64_MAX = 2**64 - 1
I64_MAX = 2**63 - 1
I64_MIN = -(2**63)
U32_MAX = 2**32 - 1

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
HTTP_PATHS = {"traces": "/v1/traces", "logs": "/v1/logs"}
GRPC_METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
# Every channel a request can arrive on: transport, encoding and compression.
CHANNELS = ("http/protobuf", "http/protobuf+gzip", "http/json", "http/json+gzip", "grpc", "grpc+gzip")
JSON_CHANNELS = ("http/json", "http/json+gzip")

# The attribute names the receiver reads: structure-aware fuzzing puts its odd values there.
KNOWN_KEYS = tuple(
    sorted(
        value
        for name, value in vars(semconv).items()
        if name.isupper() and isinstance(value, str) and "." in value and not name.startswith("OP_")
    )
)
OPERATIONS = ("chat", "invoke_agent", "execute_tool", "embeddings", "text_completion", "create_agent", "", "?")
TOKEN_KEYS = (
    semconv.GEN_AI_USAGE_INPUT_TOKENS,
    semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
    semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
)
EVENT_NAMES = (
    "event",
    semconv.EXCEPTION_EVENT,
    semconv.EVENT_TRACEHOUSE_CHECKPOINT,
    semconv.EVENT_TRACEHOUSE_APPROVAL,
    "gen_ai.user.message",
    "gen_ai.system.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
    "gen_ai.choice",
    "",
)


# --- where the choices come from -----------------------------------------------------------------


class Source:
    """The choices a generator makes. ``pick`` chooses among options (the first is the plainest:
    hypothesis shrinks towards it) and, when named, notes the choice in ``trail``, which says
    what a case is made of."""

    max_trail = 80
    # The bytes one request's big parts may take (long strings, many copies of attributes, spans
    # or records), so that what multiplies stays a request a server takes.
    request_budget = 6 << 20

    def __init__(self, now: int | None = None) -> None:
        self.trail: list[str] = []
        self.budget = self.request_budget
        # "Now" for the times of the requests: fixed, so the same choices make the same bytes.
        self.now = time.time_ns() if now is None else now

    def afford(self, size: int) -> bool:
        """Spend ``size`` bytes of the budget, if they are left."""
        if size > self.budget:
            return False
        self.budget -= size
        return True

    def copies(self, count: int, size: int) -> int:
        """How many copies of a part of ``size`` bytes (of ``count`` wanted) the budget allows;
        spends them. At least one."""
        count = max(1, min(count, self.budget // max(size, 1)))
        self.budget = max(0, self.budget - count * size)
        return count

    def pick(self, name: str | None, options: Sequence[T]) -> T:
        value = self._pick(options)
        if name and len(self.trail) < self.max_trail:
            self.trail.append(f"{name}={_short(value)}")
        return value

    def note(self, text: str) -> None:
        if len(self.trail) < self.max_trail:
            self.trail.append(text)

    def chance(self, one_in: int) -> bool:
        """True about once in ``one_in`` draws (False is the plain choice)."""
        return self.integer(1, one_in) == one_in

    def _pick(self, options: Sequence[T]) -> T:
        raise NotImplementedError

    def integer(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def double(self) -> float:
        raise NotImplementedError

    def binary(self, max_size: int) -> bytes:
        raise NotImplementedError

    def text(self, max_size: int) -> str:
        raise NotImplementedError


# Characters random text is made of: the ordinary and what breaks naive code.
_ODD_CHARS = (
    "\x00",
    "\t",
    "\n",
    "\r",
    '"',
    "'",
    "\\",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "%",
    "\u00e9",
    "\u200b",
    "\u202e",
    "\ufeff",
    "\uffff",
    "\U0001f600",
    "\u4e2d",
    "\x7f",
    "\x1b",
)


class RandomSource(Source):
    """Choices from a seeded ``random.Random``: fast, and the same for the same seed."""

    def __init__(self, seed: Any, now: int | None = None) -> None:
        super().__init__(now)
        self.rng = random.Random(seed)

    def _pick(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]

    def integer(self, lo: int, hi: int) -> int:
        if self.rng.random() < 0.1:  # the bounds, more often than uniform draws would
            return self.rng.choice((lo, hi))
        return self.rng.randint(lo, hi)

    def double(self) -> float:
        roll = self.rng.random()
        if roll < 0.3:
            return struct.unpack("<d", self.rng.randbytes(8))[0]  # any bit pattern, NaNs included
        if roll < 0.6:
            return self.rng.uniform(-1e6, 1e6)
        return self.rng.choice((0.0, -0.0, math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 1e30, 2.0**64))

    def binary(self, max_size: int) -> bytes:
        return self.rng.randbytes(self.rng.randint(0, max_size))

    def text(self, max_size: int) -> str:
        size = self.rng.randint(0, max_size)
        if self.rng.random() < 0.5:
            return "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz0123456789_.- ") for _ in range(size))
        return "".join(
            self.rng.choice(_ODD_CHARS) if self.rng.random() < 0.5 else chr(self.rng.randint(32, 0xD7FF))
            for _ in range(size)
        )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- scalar values -------------------------------------------------------------------------------


def int64(source: Source) -> int:
    return source.pick(
        None,
        (0, 1, -1, -7, 42, 2**31 - 1, 2**32, 2**53 + 1, I64_MAX, I64_MIN, None),
    ) or source.integer(I64_MIN, I64_MAX)


def double(source: Source) -> float:
    value = source.pick(
        None,
        (1.5, 0.0, -0.0, math.nan, math.inf, -math.inf, 1e30, -1e30, 1.7976931348623157e308, 5e-324, 2.0**63, None),
    )
    return source.double() if value is None else value


def deep_json_text(depth: int, kind: str = "array") -> str:
    """A JSON text nested ``depth`` deep (arrays or objects), as a string attribute may carry."""
    if kind == "array":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def string_value(source: Source) -> str:
    kind = source.pick(None, ("text", "repeated", "special", "messages", "deep json", "huge"))
    if kind == "text":
        return source.text(20)
    if kind == "repeated":
        piece, times = source.text(8) or "x", source.pick(None, (2, 100, 5_000))
        return piece * times if source.afford(len(piece) * times) else piece
    if kind == "special":
        return source.pick(
            None,
            (
                "",
                "0",
                "-7",
                "1e30",
                "NaN",
                "inf",
                "-inf",
                "9" * 40,
                "true",
                "null",
                "{",
                "[1,",
                '{"a":',
                "\x00",
                "\u202e",
            ),
        )
    if kind == "messages" and source.afford(30_000):
        return source.pick(
            None,
            (
                json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]),
                json.dumps([{"role": "user", "content": "hi"}]),
                json.dumps([{"role": 7, "parts": "x"}]),
                json.dumps({"role": "user"}),
                json.dumps([None, 1, "x", [], {}]),
                json.dumps([{"role": "assistant", "parts": [{"type": "tool_call", "arguments": {"a": [1, {}]}}]}]),
                "[" + ",".join(['{"role":"user","parts":[]}'] * 1000) + "]",
            ),
        )
    if kind == "deep json":
        depth = source.pick("json depth", (10, 100, 1_000, 100_000))
        if source.afford(depth * 6):
            return deep_json_text(depth, source.pick(None, ("array", "object")))
    if kind == "huge":
        size = source.pick("string size", (100_000, 1_000_000))
        if source.afford(size):
            return "x" * size
    return "x"


def any_value(source: Source, depth: int = 2) -> AnyValue:
    """Any AnyValue: every type, their extremes, and (``depth`` levels of) arrays and kvlists."""
    kinds = ("string", "int", "double", "bool", "bytes", "empty")
    if depth > 0:
        kinds += ("array", "kvlist")
    kind = source.pick(None, kinds)
    value = AnyValue()
    if kind == "string":
        value.string_value = string_value(source)
    elif kind == "int":
        value.int_value = int64(source)
    elif kind == "double":
        value.double_value = double(source)
    elif kind == "bool":
        value.bool_value = bool(source.integer(0, 1))
    elif kind == "bytes":
        piece, times = source.binary(16), source.pick(None, (1, 1_000))
        value.bytes_value = piece * times if source.afford(len(piece) * times) else piece
    elif kind == "array":
        for _ in range(source.pick(None, (0, 1, 3, 20))):
            value.array_value.values.add().CopyFrom(any_value(source, depth - 1))
    elif kind == "kvlist":
        for _ in range(source.pick(None, (0, 1, 3, 20))):
            value.kvlist_value.values.add(key=attribute_key(source)).value.CopyFrom(any_value(source, depth - 1))
    return value  # "empty": no value set at all


def nested_value(source: Source, depth: int) -> AnyValue:
    """A value nested ``depth`` levels deep: kvlists, arrays, or both in turn."""
    shape = source.pick("nesting", ("kvlist", "array", "alternating"))
    value = AnyValue(string_value="leaf")
    for level in range(depth):
        outer = AnyValue()
        if shape == "kvlist" or shape == "alternating" and level % 2:
            outer.kvlist_value.values.add(key=f"k{level}").value.CopyFrom(value)
        else:
            outer.array_value.values.add().CopyFrom(value)
        value = outer
    return value


def token_value(source: Source) -> AnyValue:
    """A GenAI token count as exporters send it, and as they should not."""
    value = source.pick(
        "tokens",
        (120, 0, -7, I64_MAX, I64_MIN, 2**53 + 1, math.nan, math.inf, -math.inf, 1e30, -1e30, 1.5, 2.0**64, 1e19)
        + ("12", "-7", "1e30", "NaN", "inf", "", "abc", "9" * 30, "0x10", " 12 ")
        + (True, b"\x01", "array", "kvlist", "empty"),
    )
    out = AnyValue()
    if value == "array":
        out.array_value.values.add().int_value = 12
    elif value == "kvlist":
        out.kvlist_value.values.add(key="total").value.int_value = 12
    elif value == "empty":
        pass
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    else:
        out.string_value = value
    return out


def attribute_key(source: Source) -> str:
    kind = source.pick(None, ("known", "text", "empty", "long", "dotted"))
    if kind == "known":
        return source.pick(None, KNOWN_KEYS)
    if kind == "text":
        return source.text(12)
    if kind == "empty":
        return ""
    if kind == "long":
        size = source.pick(None, (1_000, 100_000))
        return "k" * size if source.afford(size) else "k"
    return ".".join(["a"] * source.pick(None, (10, 1_000)))


def add_attributes(source: Source, attrs: Any, count: int | None = None, depth: int = 2) -> None:
    """``count`` attributes (chosen when None): a few drawn, repeated with numbered keys when
    there are many (or with the same key, sometimes)."""
    if count is None:
        count = source.pick("attributes", (0, 1, 3, 10, 200, 2_000, 5_000))
    if not count:
        return
    templates = [(attribute_key(source), any_value(source, depth)) for _ in range(min(count, 4))]
    if count > len(templates):
        size = sum(len(key) + value.ByteSize() + 8 for key, value in templates) // len(templates)
        count = max(len(templates), source.copies(count, size))
    same_keys = count > len(templates) and source.chance(4)
    for i in range(count):
        key, value = templates[i % len(templates)]
        kv = attrs.add(key=key if i < len(templates) or same_keys else f"{key}.{i}")
        kv.value.CopyFrom(value)


# --- ids and times -------------------------------------------------------------------------------


class Ids:
    """Unique valid ids for the spans of one request, from one drawn base (few draws, however
    many spans)."""

    def __init__(self, source: Source) -> None:
        self.base = source.integer(1, 2**62)
        self.count = 0

    def next(self, size: int) -> bytes:
        self.count += 1
        return ((self.base * 0x9E3779B97F4A7C15 + self.count) % (2 ** (8 * size) - 1) + 1).to_bytes(size, "big")


def some_id(source: Source, ids: Ids, size: int, name: str) -> bytes:
    kind = source.pick(name, ("valid", "valid", "valid", "zero", "wrong length", "empty", "any"))
    if kind == "valid":
        return ids.next(size)
    if kind == "zero":
        return b"\x00" * size
    if kind == "wrong length":
        return ids.next(size)[: source.integer(1, size - 1)] if source.chance(2) else ids.next(size) + b"\x01"
    if kind == "empty":
        return b""
    return source.binary(size * 2)


def timestamp(source: Source, now: int) -> int:
    return max(0, min(U64_MAX, _timestamp(source, now)))


def _timestamp(source: Source, now: int) -> int:
    kind = source.pick(
        "time",
        ("now", "zero", "epoch", "days ago", "years ahead", "2262", "2^63", "near 2^64", "2^64-1", "any"),
    )
    if kind == "now":
        return now - source.integer(0, 10**12)
    if kind == "zero":
        return 0
    if kind == "epoch":
        return source.integer(1, 365 * DAY_NS)
    if kind == "days ago":
        return now - source.integer(1, 20_000) * DAY_NS
    if kind == "years ahead":
        return now + source.integer(1, 100_000) * DAY_NS
    if kind == "2262":  # where int64 nanoseconds end
        return I64_MAX - source.integer(0, 10**12)
    if kind == "2^63":
        return 2**63 + source.integer(0, 10**12)
    if kind == "near 2^64":
        return U64_MAX - source.integer(1, 10**12)
    if kind == "2^64-1":
        return U64_MAX
    return source.integer(0, U64_MAX)


def end_time(source: Source, start: int, now: int) -> int:
    kind = source.pick("end", ("after start", "zero", "before start", "2^64-1", "any"))
    if kind == "after start":
        return min(U64_MAX, start + source.pick(None, (1_000_000, 0, 1, 3_600 * 10**9, 400 * DAY_NS)))
    if kind == "zero":
        return 0
    if kind == "before start":
        return max(0, start - source.pick(None, (1, 10**9, start)))
    if kind == "2^64-1":
        return U64_MAX
    return timestamp(source, now)


# --- trace requests ------------------------------------------------------------------------------


def genai_attributes(source: Source, span: Span, run_id: str | None) -> None:
    """The GenAI and tracehouse attributes the receiver reads, with odd values."""
    operation = source.pick("operation", OPERATIONS)
    attrs = span.attributes
    if operation:
        attrs.add(key=semconv.GEN_AI_OPERATION_NAME).value.string_value = operation
    if run_id is not None:
        attrs.add(key=semconv.TRACEHOUSE_RUN_ID).value.string_value = run_id
    if operation == "invoke_agent":
        attrs.add(key=semconv.GEN_AI_AGENT_NAME).value.string_value = source.pick(
            None, ("planner", "", "a" * 10_000, "\u202e\x00")
        )
    model = source.pick("model", ("gpt-4o-mini", "claude-sonnet-4", "", "no-such-model", "gpt-4o-mini" * 1000))
    if model:
        attrs.add(key=semconv.GEN_AI_REQUEST_MODEL).value.string_value = model
    for key in source.pick(None, (TOKEN_KEYS[:2], TOKEN_KEYS, TOKEN_KEYS[:1], ())):
        attrs.add(key=key).value.CopyFrom(token_value(source))
    if source.chance(3):
        attrs.add(key=semconv.TRACEHOUSE_COST_USD).value.CopyFrom(token_value(source))
    if source.chance(3):
        attrs.add(key=semconv.TRACEHOUSE_TTL_DAYS).value.CopyFrom(token_value(source))
    if source.chance(3):
        key = source.pick("payload", (semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_OUTPUT_MESSAGES) + KNOWN_KEYS)
        attrs.add(key=key).value.string_value = string_value(source)


def span_events(source: Source, span: Span, now: int) -> None:
    for _ in range(source.pick("events", (0, 1, 3, 100))):
        event = span.events.add(name=source.pick(None, EVENT_NAMES), time_unix_nano=timestamp(source, now))
        add_attributes(source, event.attributes, source.pick(None, (0, 2, 50)), depth=1)
        event.dropped_attributes_count = source.pick(None, (0, U32_MAX))


def span_links(source: Source, span: Span, ids: Ids) -> None:
    for _ in range(source.pick("links", (0, 1, 3))):
        link = span.links.add(
            trace_id=some_id(source, ids, 16, None), span_id=some_id(source, ids, 8, None), trace_state=source.text(8)
        )
        add_attributes(source, link.attributes, source.pick(None, (0, 2)), depth=1)
        link.flags = source.pick(None, (0, 1, U32_MAX))


def one_span(source: Source, ids: Ids, now: int, *, odd_ids: bool, odd_times: bool, parent: bytes = b"") -> Span:
    """A span with every field drawn."""
    span = Span()
    if odd_ids:
        span.trace_id = some_id(source, ids, 16, "trace_id")
        span.span_id = some_id(source, ids, 8, "span_id")
        span.parent_span_id = source.pick("parent", (parent, b"", some_id(source, ids, 8, "parent_id")))
    else:
        span.trace_id, span.span_id, span.parent_span_id = ids.next(16), ids.next(8), parent
    if odd_times:
        span.start_time_unix_nano = timestamp(source, now)
        span.end_time_unix_nano = end_time(source, span.start_time_unix_nano, now)
    else:
        span.start_time_unix_nano = now - source.integer(0, 10**10)
        span.end_time_unix_nano = span.start_time_unix_nano + source.integer(0, 10**10)
    span.name = source.pick(None, ("chat gpt-4o-mini", "invoke_agent planner", "", "execute_tool x", None)) or (
        source.text(30)
    )
    span.kind = source.pick("kind", (1, 0, 2, 3, 4, 5, 6, 99, -1, 2**31 - 1, -(2**31)))
    span.status.code = source.pick("status", (0, 1, 2, 3, -1, 2**31 - 1))
    span.status.message = source.pick(None, ("", "boom", None)) or source.text(50)
    span.trace_state = source.pick(None, ("", "a=b", None)) or source.text(50)
    span.flags = source.pick(None, (0, 1, 0x100, 0x300, U32_MAX))
    span.dropped_attributes_count = source.pick(None, (0, U32_MAX))
    span.dropped_events_count = source.pick(None, (0, U32_MAX))
    span.dropped_links_count = source.pick(None, (0, U32_MAX))
    if source.chance(2):
        genai_attributes(source, span, source.pick("run_id", (None, "run-fuzz", "", "r" * 10_000, "\x00\u202e")))
    add_attributes(source, span.attributes)
    span_events(source, span, now)
    span_links(source, span, ids)
    return span


def resource_and_scope(source: Source, rs: Any, scope: Any, resource_attributes: bool = True) -> None:
    rs.resource.attributes.add(key=semconv.SERVICE_NAME).value.string_value = source.pick(
        None, ("fuzz-agent", "", "s" * 10_000, "\x00")
    )
    if resource_attributes and source.chance(3):
        rs.resource.attributes.add(
            key=source.pick(
                "resource key", (semconv.TRACEHOUSE_TENANT, semconv.TRACEHOUSE_RUN_ID, semconv.TRACEHOUSE_TTL_DAYS)
            )
        ).value.CopyFrom(any_value(source, 1))
    if resource_attributes:
        add_attributes(source, rs.resource.attributes, source.pick(None, (0, 2, 100)), depth=1)
    rs.resource.dropped_attributes_count = source.pick(None, (0, U32_MAX))
    rs.schema_url = source.pick(None, ("", "https://opentelemetry.io/schemas/1.26.0", "\x00" * 10))
    scope.scope.name = source.pick(None, ("fuzz", "", "n" * 10_000))
    scope.scope.version = source.pick(None, ("1.0", "", "\u202e"))
    if resource_attributes:
        add_attributes(source, scope.scope.attributes, source.pick(None, (0, 2)), depth=1)


TRACE_SHAPES = ("mixed", "genai run", "many days", "odd times", "wide", "many attributes", "big value", "deep", "empty")


def trace_request(source: Source, now: int | None = None) -> ExportTraceServiceRequest:
    """An ExportTraceServiceRequest of one of several shapes, each aimed at one kind of trouble."""
    now = source.now if now is None else now
    shape = source.pick("shape", TRACE_SHAPES)
    ids = Ids(source)
    request = ExportTraceServiceRequest()
    if shape == "empty":
        kind = source.pick("empty", ("request", "resource", "scope", "default span"))
        if kind != "request":
            rs = request.resource_spans.add()
            if kind != "resource":
                ss = rs.scope_spans.add()
                if kind == "default span":
                    ss.spans.add()
        return request
    if shape == "mixed":
        for _ in range(source.pick("resources", (1, 2, 4))):
            rs = request.resource_spans.add()
            ss = rs.scope_spans.add()
            resource_and_scope(source, rs, ss)
            for _ in range(source.pick("scopes", (0, 1)) if len(request.resource_spans) > 1 else 0):
                rs.scope_spans.add(scope=ss.scope)
            for scope in rs.scope_spans:
                parent = b""
                for _ in range(source.pick("spans", (1, 2, 5))):
                    span = one_span(
                        source,
                        ids,
                        now,
                        odd_ids=source.chance(2),
                        odd_times=source.chance(2),
                        parent=parent,
                    )
                    scope.spans.append(span)
                    parent = parent or span.span_id
        return request
    rs = request.resource_spans.add()
    ss = rs.scope_spans.add()
    resource_and_scope(source, rs, ss, resource_attributes=shape == "genai run")
    if shape == "genai run":
        # A run root and its LLM calls, valid but for the GenAI values: the writer must store it.
        run_id = source.pick("run_id", ("run-" + uuid.UUID(int=ids.base).hex, "", "\u202e" * 50))
        root = ss.spans.add(trace_id=ids.next(16), span_id=ids.next(8), name="invoke_agent fuzz")
        root.start_time_unix_nano, root.end_time_unix_nano = now - 10**9, now
        root.attributes.add(key=semconv.GEN_AI_OPERATION_NAME).value.string_value = "invoke_agent"
        root.attributes.add(key=semconv.TRACEHOUSE_RUN_ID).value.string_value = run_id
        for _ in range(source.pick("calls", (1, 2, 4))):
            call = ss.spans.add(trace_id=root.trace_id, span_id=ids.next(8), parent_span_id=root.span_id)
            call.name = "chat"
            call.start_time_unix_nano, call.end_time_unix_nano = now - 10**9 + 1, now - 1
            genai_attributes(source, call, run_id)
        return request
    if shape == "many days":
        # Valid spans, each on another day: across a partition-per-day table, one insert.
        days = source.pick("days", (2, 30, 99, 100, 101, 150, 400, 1_500))
        direction = source.pick("direction", ("past", "future", "epoch", "both"))
        trace = ids.next(16)
        for day in range(days):
            if direction == "past":
                start = now - day * DAY_NS
            elif direction == "future":
                start = now + day * DAY_NS
            elif direction == "epoch":
                start = day * DAY_NS + 1
            else:
                start = now + (day // 2 if day % 2 else -day // 2) * DAY_NS
            span = ss.spans.add(trace_id=trace, span_id=ids.next(8), name=f"day {day}")
            span.start_time_unix_nano, span.end_time_unix_nano = start, start + 1_000
        return request
    if shape == "odd times":
        parent = b""
        for _ in range(source.pick("spans", (1, 2, 5))):
            span = ss.spans.add(trace_id=ids.next(16), span_id=ids.next(8), parent_span_id=parent, name="t")
            span.start_time_unix_nano = timestamp(source, now)
            span.end_time_unix_nano = end_time(source, span.start_time_unix_nano, now)
            parent = parent or span.span_id
        return request
    if shape == "wide":
        count = source.pick("spans", (10, 500, 3_000, 10_000))
        templates = [
            one_span(source, ids, now, odd_ids=False, odd_times=False) for _ in range(source.pick("templates", (1, 3)))
        ]
        count = source.copies(count, max(t.ByteSize() for t in templates) + 8)
        for i in range(count):
            span = ss.spans.add()
            span.CopyFrom(templates[i % len(templates)])
            span.span_id = ids.next(8)
        return request
    span = ss.spans.add(trace_id=ids.next(16), span_id=ids.next(8), name=shape)
    span.start_time_unix_nano, span.end_time_unix_nano = now - 10**9, now
    if shape == "many attributes":
        add_attributes(source, span.attributes, source.pick("attributes", (1_000, 5_000, 20_000)), depth=1)
    elif shape == "big value":
        size = source.pick("value bytes", (100_000, 1 << 20, 8 << 20, 19 << 20, 21 << 20))
        span.attributes.add(key=source.pick("key", KNOWN_KEYS)).value.string_value = "x" * size
    elif shape == "deep":
        depth = source.pick("depth", (2, 10, 30, 32, 33, 50, 100, 300, 500))
        span.attributes.add(key="deep").value.CopyFrom(nested_value(source, depth))
    return request


# --- logs requests -------------------------------------------------------------------------------

LOG_SHAPES = ("mixed", "many days", "wide", "deep body", "big body", "empty")


def one_log(source: Source, ids: Ids, now: int, odd: bool) -> LogRecord:
    record = LogRecord()
    record.time_unix_nano = timestamp(source, now) if odd else now
    record.observed_time_unix_nano = timestamp(source, now) if odd else now
    record.severity_number = source.pick("severity", (9, 0, 13, 17, 24, 25, -1, 2**31 - 1))
    record.severity_text = source.pick(None, ("INFO", "", "WARN", None)) or source.text(20)
    record.body.CopyFrom(any_value(source, 2))
    if odd:
        record.trace_id = some_id(source, ids, 16, "log trace_id")
        record.span_id = some_id(source, ids, 8, "log span_id")
    elif source.chance(2):
        record.trace_id, record.span_id = ids.next(16), ids.next(8)
    record.flags = source.pick(None, (0, 1, U32_MAX))
    record.event_name = source.pick(None, ("", "gen_ai.client.inference.operation.details", None)) or source.text(20)
    add_attributes(source, record.attributes, source.pick("log attributes", (0, 2, 10, 1_000)))
    if source.chance(3):
        record.attributes.add(key=semconv.TRACEHOUSE_RUN_ID).value.CopyFrom(any_value(source, 1))
    return record


def logs_request(source: Source, now: int | None = None) -> ExportLogsServiceRequest:
    now = source.now if now is None else now
    shape = source.pick("shape", LOG_SHAPES)
    ids = Ids(source)
    request = ExportLogsServiceRequest()
    if shape == "empty":
        if source.chance(2):
            request.resource_logs.add().scope_logs.add().log_records.add()
        return request
    rl = request.resource_logs.add()
    sl = rl.scope_logs.add()
    resource_and_scope(source, rl, sl, resource_attributes=shape == "mixed")
    if shape == "mixed":
        for _ in range(source.pick("records", (1, 3, 10))):
            sl.log_records.append(one_log(source, ids, now, odd=source.chance(2)))
    elif shape == "many days":
        for day in range(source.pick("days", (2, 99, 101, 400))):
            sl.log_records.add(time_unix_nano=now - day * DAY_NS, severity_number=9).body.string_value = f"day {day}"
    elif shape == "wide":
        template = one_log(source, ids, now, odd=False)
        for _ in range(source.copies(source.pick("records", (100, 3_000, 10_000)), template.ByteSize() + 8)):
            sl.log_records.add().CopyFrom(template)
    elif shape == "deep body":
        record = sl.log_records.add(time_unix_nano=now)
        record.body.CopyFrom(nested_value(source, source.pick("depth", (10, 33, 100, 500))))
    else:
        sl.log_records.add(time_unix_nano=now).body.string_value = "x" * source.pick(
            "body bytes", (100_000, 4 << 20, 21 << 20)
        )
    return request


# --- OTLP/JSON -----------------------------------------------------------------------------------

_ID_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


@contextlib.contextmanager
def _deep_recursion(limit: int = 20_000) -> Iterator[None]:
    """protobuf's and json's converters recurse once per nesting level or so."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def otlp_document(message: Any, *, field_names: bool = False, enum_names: bool = False) -> dict:
    """A request as an OTLP/JSON document: hex ids; lowerCamelCase (or the proto field names),
    enums as integers (or names), 64-bit integers as strings (protobuf's JSON mapping)."""
    with _deep_recursion():
        document = json_format.MessageToDict(
            message, preserving_proto_field_name=field_names, use_integers_for_enums=not enum_names
        )
    stack = [document]
    while stack:  # iterative: documents may be nested deeper than Python recurses
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _ID_KEYS and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return document


def dump_json(document: Any) -> bytes:
    with _deep_recursion():
        return json.dumps(document).encode()


def otlp_json(source: Source, message: Any) -> bytes:
    style = source.pick("json style", ("camelCase", "field names", "enum names", "int64 as numbers"))
    document = otlp_document(message, field_names=style == "field names", enum_names=style == "enum names")
    if style == "int64 as numbers":
        _int_strings_to_numbers(document)
    return dump_json(document)


_INT64_KEYS = {
    name
    for camel in ("intValue", "startTimeUnixNano", "endTimeUnixNano", "timeUnixNano", "observedTimeUnixNano")
    for name in (camel, re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel))
}


def _int_strings_to_numbers(document: Any) -> None:
    stack = [document]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in list(items):
            if key in _INT64_KEYS and isinstance(value, str) and re.fullmatch(r"-?\d{1,25}", value):
                node[key] = int(value)
            else:
                stack.append(value)


def _deep_value_json(depth: int, shape: str) -> str:
    """An OTLP/JSON AnyValue nested ``depth`` deep, written out (no converter could nest it)."""
    if shape == "kvlist":
        opening, closing = '{"kvlistValue":{"values":[{"key":"k","value":', "}]}}"
    else:
        opening, closing = '{"arrayValue":{"values":[', "]}}"
    return opening * depth + '{"stringValue":"leaf"}' + closing * depth


def _json_span(ids: Ids, now: int, attributes: str = "[]", **fields: Any) -> str:
    span = {
        "traceId": ids.next(16).hex(),
        "spanId": ids.next(8).hex(),
        "name": "json",
        "kind": 1,
        "startTimeUnixNano": str(now - 10**9),
        "endTimeUnixNano": str(now),
    } | fields
    text = json.dumps(span)
    return text[:-1] + ', "attributes": ' + attributes + "}"


def _json_traces(spans: Sequence[str], resource_attributes: str = "[]") -> bytes:
    return (
        '{"resourceSpans":[{"resource":{"attributes":' + resource_attributes + '},"scopeSpans":[{"scope":'
        '{"name":"fuzz"},"spans":[' + ",".join(spans) + "]}]}]}"
    ).encode()


ODD_JSON_VALUES: tuple[Any, ...] = (
    None,
    7,
    -1,
    1.5,
    "",
    "x",
    True,
    [],
    {},
    [None],
    {"": None},
    "NaN",
    "-5",
    "1e30",
    "18446744073709551616",
    "0x10",
    2**64,
    -(2**63) - 1,
    10**30,
    "\ud800",
)
# What json.dumps cannot write: literals Python's json reads anyway, and too-big numbers.
ODD_JSON_LITERALS = (
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-0",
    "1E+2",
    "123456789012345678901234567890",
    '"\\ud800"',
)


def handmade_json(source: Source, now: int | None = None) -> tuple[str, bytes]:
    """An OTLP/JSON body protobuf could not have written: (signal, body)."""
    now = source.now if now is None else now
    ids = Ids(source)
    kind = source.pick(
        "json",
        ("deep value", "deep unknown field", "wrong type", "odd literal", "numbers as strings", "bad id")
        + ("truncated", "not an object", "bad encoding", "odd enum", "mutated document"),
    )
    if kind == "deep value":
        depth = source.pick("depth", (50, 99, 100, 101, 200, 300, 320, 500, 1_000, 5_000, 50_000))
        shape = source.pick("nesting", ("kvlist", "array"))
        where = source.pick("where", ("span attribute", "resource attribute", "event attribute", "log body"))
        value = _deep_value_json(depth, shape)
        if where == "log body":
            return "logs", (
                '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"' + str(now) + '","body":'
                + value + "}]}]}]}"
            ).encode()  # fmt: skip
        attribute = '[{"key":"deep","value":' + value + "}]"
        if where == "span attribute":
            return "traces", _json_traces([_json_span(ids, now, attribute)])
        if where == "resource attribute":
            return "traces", _json_traces([_json_span(ids, now)], attribute)
        event = '[{"timeUnixNano":"' + str(now) + '","name":"e","attributes":' + attribute + "}]"
        return "traces", _json_traces([_json_span(ids, now).replace('"name": "json"', '"events": ' + event, 1)])
    if kind == "deep unknown field":
        depth = source.pick("depth", (100, 1_000, 10_000, 100_000))
        nested = source.pick("nesting", ("array", "object"))
        return "traces", ('{"unknownField":' + deep_json_text(depth, nested) + ',"resourceSpans":[]}').encode()
    if kind == "odd literal":
        literal = source.pick("literal", ODD_JSON_LITERALS)
        field = source.pick(
            "field", ("startTimeUnixNano", "kind", "intValue", "doubleValue", "droppedAttributesCount", "traceId")
        )
        if field in ("intValue", "doubleValue"):
            attribute = (
                '[{"key":"' + semconv.GEN_AI_USAGE_INPUT_TOKENS + '","value":{"' + field + '":' + literal + "}}]"
            )
            return "traces", _json_traces([_json_span(ids, now, attribute)])
        span = _json_span(ids, now)  # the field again, last: the later of two keys wins
        return "traces", _json_traces([span[:-1] + f', "{field}": {literal}}}'])
    if kind == "numbers as strings":
        value = source.pick(
            "number", ("123", "-1", "1e30", "1.5", "18446744073709551615", "18446744073709551616", "NaN", "", " 1")
        )
        field = source.pick(
            "field", ("startTimeUnixNano", "endTimeUnixNano", "intValue", "doubleValue", "kind", "flags")
        )
        if field in ("intValue", "doubleValue"):
            attr = json.dumps([{"key": semconv.GEN_AI_USAGE_OUTPUT_TOKENS, "value": {field: value}}])
            return "traces", _json_traces([_json_span(ids, now, attr)])
        return "traces", _json_traces([_json_span(ids, now, **{field: value})])
    if kind == "bad id":
        value = source.pick(
            "id",
            ("zz" * 16, "abc", "0x" + "a" * 30, "A" * 32, "a" * 31, " " + "a" * 32, "\u0661" * 32, "", 7, None, ["a"])
            + ("AAAAAAAAAAAAAAAAAAAAAA==", "a" * 4_000),
        )
        field = source.pick("field", ("traceId", "spanId", "parentSpanId", "trace_id", "links traceId"))
        if field == "links traceId":
            return "traces", _json_traces([_json_span(ids, now, links=[{"traceId": value, "spanId": "a" * 16}])])
        return "traces", _json_traces([_json_span(ids, now, **{field: value})])
    if kind == "truncated":
        body = _json_traces([_json_span(ids, now, json.dumps([{"key": "k", "value": {"stringValue": "v"}}]))])
        return "traces", body[: source.integer(0, len(body) - 1)]
    if kind == "not an object":
        return source.pick("signal", ("traces", "logs")), source.pick(
            "body", (b"[]", b"null", b"1", b'"x"', b"", b" ", b"true", b"[{}]", b"{}{}", b"{", b"\x00")
        )
    if kind == "bad encoding":
        body = _json_traces([_json_span(ids, now, json.dumps([{"key": "k", "value": {"stringValue": "\u00e9"}}]))])
        how = source.pick("encoding", ("bom", "utf-16", "latin-1 byte", "lone surrogate", "nul", "overlong"))
        if how == "bom":
            return "traces", b"\xef\xbb\xbf" + body
        if how == "utf-16":
            return "traces", body.decode().encode("utf-16")
        if how == "latin-1 byte":
            return "traces", body.replace("\u00e9".encode(), b"\xe9")
        if how == "lone surrogate":
            return "traces", body.replace(b"\\u00e9", b"\\ud800")
        if how == "nul":
            return "traces", body.replace(b"\\u00e9", b"\\u0000")
        return "traces", body.replace(b"\\u00e9", b"\xc0\xaf")
    if kind == "odd enum":
        value = source.pick("enum", ("SPAN_KIND_SERVER", "SPAN_KIND_NOPE", 99, -1, 2**40, 1.5, "1", None, True))
        field = source.pick("field", ("kind", "status"))
        if field == "status":
            return "traces", _json_traces([_json_span(ids, now, status={"code": value, "message": "m"})])
        return "traces", _json_traces([_json_span(ids, now, kind=value)])
    if kind == "mutated document":
        signal = source.pick("signal", ("traces", "logs"))
        message = trace_request(source, now) if signal == "traces" else logs_request(source, now)
        document = otlp_document(message)
        return signal, dump_json(mutate_document(source, document))
    # "wrong type": a valid document with one node replaced by a value of another type
    document = otlp_document(trace_request_valid(source, now))
    return "traces", dump_json(mutate_document(source, document, replace_only=True))


def mutate_document(source: Source, document: Any, replace_only: bool = False) -> Any:
    """Change one node of a JSON document: another type, gone, repeated, wrapped, nested deep."""
    nodes: list[tuple[Any, Any]] = []  # (container, key) of every value
    stack = [document]
    while stack and len(nodes) < 5_000:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            nodes.append((node, key))
            stack.append(value)
    if not nodes:
        return source.pick("document", ODD_JSON_VALUES)
    container, key = nodes[source.integer(0, len(nodes) - 1)]
    source.note(f"at={_short(key)}")
    how = "replace" if replace_only else source.pick("mutation", ("replace", "delete", "wrap", "repeat", "deepen"))
    if how == "replace":
        container[key] = source.pick("value", ODD_JSON_VALUES)
    elif how == "delete":
        del container[key]
    elif how == "wrap":
        container[key] = [container[key]]
    elif how == "repeat" and isinstance(container[key], list):
        times = source.pick(None, (2, 1_000))
        if len(dump_json(container[key])) * times < 8 << 20:
            container[key] = container[key] * times
    else:
        value = container[key]
        for _ in range(source.pick("depth", (50, 500))):
            value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
        container[key] = value
    return document


def trace_request_valid(source: Source, now: int | None = None) -> ExportTraceServiceRequest:
    """A small request every part of which is valid (the base of mutations)."""
    now = source.now if now is None else now
    ids = Ids(source)
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key=semconv.SERVICE_NAME).value.string_value = "fuzz-agent"
    ss = rs.scope_spans.add()
    ss.scope.name = "fuzz"
    root = ss.spans.add(trace_id=ids.next(16), span_id=ids.next(8), name="invoke_agent fuzz", kind=1)
    root.start_time_unix_nano, root.end_time_unix_nano = now - 10**9, now
    root.attributes.add(key=semconv.GEN_AI_OPERATION_NAME).value.string_value = "invoke_agent"
    for _ in range(source.pick("calls", (1, 3))):
        call = ss.spans.add(trace_id=root.trace_id, span_id=ids.next(8), parent_span_id=root.span_id, name="chat")
        call.start_time_unix_nano, call.end_time_unix_nano = now - 10**9 + 1, now - 1
        call.attributes.add(key=semconv.GEN_AI_OPERATION_NAME).value.string_value = "chat"
        call.attributes.add(key=semconv.GEN_AI_REQUEST_MODEL).value.string_value = "gpt-4o-mini"
        call.attributes.add(key=semconv.GEN_AI_USAGE_INPUT_TOKENS).value.int_value = 100
        call.attributes.add(key=semconv.GEN_AI_USAGE_OUTPUT_TOKENS).value.int_value = 10
        call.attributes.add(key="list").value.array_value.values.add().kvlist_value.values.add(key="a")
        call.events.add(name="gen_ai.choice", time_unix_nano=now - 2).attributes.add(key="x").value.double_value = 1.0
    return request


def logs_request_valid(source: Source, now: int | None = None) -> ExportLogsServiceRequest:
    """A small logs request every part of which is valid."""
    now = source.now if now is None else now
    ids = Ids(source)
    request = ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.add(key=semconv.SERVICE_NAME).value.string_value = "fuzz-agent"
    sl = rl.scope_logs.add()
    sl.scope.name = "fuzz"
    for i in range(source.pick("records", (1, 3))):
        record = sl.log_records.add(time_unix_nano=now, severity_number=9, severity_text="INFO")
        record.trace_id, record.span_id = ids.next(16), ids.next(8)
        record.body.string_value = f"log {i}"
        record.attributes.add(key=semconv.TRACEHOUSE_RUN_ID).value.string_value = "run-fuzz"
    return request


# --- byte mutations ------------------------------------------------------------------------------

_INTERESTING_BYTES = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0x0A, 0x12, 0x1A, 0x22, 0x08, 0x09, 0x11, 0x39, 0x41)
# Wire-format pieces: a huge varint, a length prefix past the end, a group start, an unknown field.
_INTERESTING_CHUNKS = (
    b"\xff" * 10,
    b"\x0a\xff\xff\xff\xff\x0f",
    b"\x0b",
    b"\x0c",
    b"\xfa\xff\xff\xff\x0f\x00",
    b"\x12\x00",
    b"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
    b'{"',
    b"[" * 100,
    b"\x1f\x8b\x08\x00",
)


def mutate_bytes(source: Source, data: bytes) -> bytes:
    """Flip, overwrite, insert, delete, repeat and cut bytes (a few times over)."""
    out = bytearray(data)
    for _ in range(source.pick("mutations", (1, 2, 5, 20))):
        how = source.pick(
            "edit", ("flip bit", "set byte", "insert bytes", "insert chunk", "delete", "repeat", "truncate")
        )
        at = source.integer(0, max(0, len(out) - 1))
        if how == "flip bit" and out:
            out[at] ^= 1 << source.integer(0, 7)
        elif how == "set byte" and out:
            out[at] = source.pick(None, _INTERESTING_BYTES + (source.integer(0, 255),))
        elif how == "insert bytes":
            out[at:at] = source.binary(16)
        elif how == "insert chunk":
            out[at:at] = source.pick(None, _INTERESTING_CHUNKS)
        elif how == "delete":
            del out[at : at + source.pick(None, (1, 4, 64))]
        elif how == "repeat":
            piece = out[at : at + source.pick(None, (1, 16, 256))]
            out[at:at] = piece * source.pick(None, (2, 100))
        elif how == "truncate":
            del out[at:]
    return bytes(out)


# --- cases ---------------------------------------------------------------------------------------


@dataclass
class Case:
    """One request as sent: where to, how encoded, the body, and the choices that made it."""

    signal: str  # "traces" or "logs"
    channel: str  # one of CHANNELS
    body: bytes  # as sent: gzip'd for HTTP with gzip (gRPC compresses itself)
    trail: str = ""

    @property
    def transport(self) -> str:
        return self.channel.split("/")[0].split("+")[0]

    @property
    def json(self) -> bool:
        return self.channel.startswith("http/json")

    @property
    def gzip(self) -> bool:
        return self.channel.endswith("+gzip")

    def __repr__(self) -> str:  # what a failure prints of a case: never megabytes
        head = self.body[:300]
        more = f"... ({len(self.body)} bytes)" if len(self.body) > len(head) else ""
        return f"Case({self.signal} over {self.channel}: {self.trail}; body={head!r}{more})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's printer, likewise
        printer.text(repr(self))


def encode(source: Source, signal: str, message: Any, channels: Sequence[str] = CHANNELS) -> Case:
    """A generated request, encoded for one of ``channels``."""
    channel = source.pick("channel", channels)
    body = otlp_json(source, message) if channel.startswith("http/json") else message.SerializeToString()
    if channel.startswith("http/") and channel.endswith("+gzip"):
        body = gzip.compress(body, compresslevel=1, mtime=0)
    return Case(signal, channel, body, ", ".join(source.trail))


def generated_case(source: Source, signal: str | None = None, channels: Sequence[str] = CHANNELS) -> Case:
    signal = signal or source.pick("signal", ("traces", "logs"))
    message = trace_request(source) if signal == "traces" else logs_request(source)
    return encode(source, signal, message, channels)


def json_case(source: Source) -> Case:
    signal, body = handmade_json(source)
    channel = source.pick("channel", JSON_CHANNELS)
    if channel.endswith("+gzip"):
        body = gzip.compress(body, compresslevel=1, mtime=0)
    return Case(signal, channel, body, ", ".join(source.trail))


def mutated_case(source: Source) -> Case:
    """A valid request (or a generated one) with its bytes mutated; sometimes before gzip,
    sometimes after, sometimes sent as the other signal."""
    signal = source.pick("signal", ("traces", "logs"))
    base = source.pick("base", ("valid", "generated"))
    if signal == "traces":
        message = trace_request_valid(source) if base == "valid" else trace_request(source)
    else:
        message = logs_request_valid(source) if base == "valid" else logs_request(source)
    channel = source.pick("channel", CHANNELS)
    body = otlp_json(source, message) if channel.startswith("http/json") else message.SerializeToString()
    compressed = channel.startswith("http/") and channel.endswith("+gzip")
    if compressed and source.chance(2):
        source.note("mutated after gzip")
        body = mutate_bytes(source, gzip.compress(body, compresslevel=1, mtime=0))
    else:
        body = mutate_bytes(source, body)
        body = gzip.compress(body, compresslevel=1, mtime=0) if compressed else body
    if source.chance(5):
        signal = "logs" if signal == "traces" else "traces"
        source.note(f"sent as {signal}")
    return Case(signal, channel, body, ", ".join(source.trail))


def valid_run(run_id: str, now: int | None = None) -> ExportTraceServiceRequest:
    """A small valid run: an invoke_agent root and one LLM call, with a new trace id."""
    now = time.time_ns() if now is None else now
    trace, root_id, child_id = uuid.uuid4().bytes, uuid.uuid4().bytes[:8], uuid.uuid4().bytes[:8]
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key=semconv.SERVICE_NAME).value.string_value = "fuzz-canary"
    ss = rs.scope_spans.add()
    ss.scope.name = "fuzz"
    root = ss.spans.add(trace_id=trace, span_id=root_id, name="invoke_agent canary", kind=1)
    root.start_time_unix_nano, root.end_time_unix_nano = now - 2_000_000, now
    child = ss.spans.add(trace_id=trace, span_id=child_id, parent_span_id=root_id, name="chat gpt-4o-mini", kind=3)
    child.start_time_unix_nano, child.end_time_unix_nano = now - 1_000_000, now - 500_000
    for span, attrs in (
        (root, {semconv.GEN_AI_OPERATION_NAME: "invoke_agent", semconv.GEN_AI_AGENT_NAME: "canary"}),
        (child, {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini"}),
    ):
        span.attributes.add(key=semconv.TRACEHOUSE_RUN_ID).value.string_value = run_id
        for key, value in attrs.items():
            span.attributes.add(key=key).value.string_value = value
    child.attributes.add(key=semconv.GEN_AI_USAGE_INPUT_TOKENS).value.int_value = 12
    child.attributes.add(key=semconv.GEN_AI_USAGE_OUTPUT_TOKENS).value.int_value = 3
    return request


# --- sending, and judging the answers ------------------------------------------------------------


@dataclass
class Outcome:
    """How the server answered one request: ``code`` is the HTTP status or the gRPC status
    name ("no answer" when it gave none); ``allowed`` whether the OTLP rules allow that answer
    to any request (a client error, a success, or backpressure: never a server error)."""

    channel: str
    code: str
    allowed: bool
    detail: str = ""


GRPC_ALLOWED = {"OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "UNAUTHENTICATED"}


class Client:
    """Sends cases, runs and reads to one server: ``http`` is its base URL, ``grpc`` its
    host:port."""

    def __init__(self, http: str, grpc_target: str, timeout: float = 60) -> None:
        self.http = http.rstrip("/")
        self.timeout = timeout
        self.channel = grpc.insecure_channel(
            grpc_target,
            options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)],
        )
        self._calls = {signal: self.channel.unary_unary(method) for signal, method in GRPC_METHODS.items()}

    def close(self) -> None:
        self.channel.close()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, lower-cased headers, body) of one HTTP request on a new connection."""
        parts = urlsplit(self.http)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            conn.close()

    def send(self, case: Case) -> Outcome:
        if case.transport == "grpc":
            return self._send_grpc(case)
        headers = {"Content-Type": JSON if case.json else PROTOBUF}
        if case.gzip:
            headers["Content-Encoding"] = "gzip"
        try:
            status, reply_headers, data = self.request("POST", HTTP_PATHS[case.signal], case.body, headers)
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(case.channel, "no answer", False, f"{type(exc).__name__}: {exc}")
        allowed = status < 500 or status == 503 and "retry-after" in reply_headers
        return Outcome(case.channel, str(status), allowed, "" if allowed else data[:500].decode(errors="replace"))

    def _send_grpc(self, case: Case) -> Outcome:
        compression = grpc.Compression.Gzip if case.gzip else grpc.Compression.NoCompression
        try:
            self._calls[case.signal](case.body, timeout=self.timeout, compression=compression)
        except grpc.RpcError as exc:
            name = exc.code().name
            return Outcome(case.channel, name, name in GRPC_ALLOWED, "" if name in GRPC_ALLOWED else exc.details())
        return Outcome(case.channel, "OK", True)

    def send_run(self, run_id: str, channel: str = "http/protobuf", deadline: float = 60) -> Outcome:
        """Send a valid run; retried while the server asks to retry later."""
        body = valid_run(run_id).SerializeToString()
        until = time.monotonic() + deadline
        while True:
            sent = gzip.compress(body) if channel.startswith("http/") and channel.endswith("+gzip") else body
            outcome = self.send(Case("traces", channel, sent))
            if outcome.code not in ("503", "UNAVAILABLE", "RESOURCE_EXHAUSTED") or time.monotonic() > until:
                return outcome
            time.sleep(0.5)

    def run_stored(self, run_id: str) -> bool:
        """Whether the read API finds the run."""
        status, _, body = self.request("GET", f"/api/v1/agents/logs?run_id={quote(run_id)}")
        return status == 200 and json.loads(body)["run_id"] == run_id

    def metric(self, name: str) -> float:
        _, _, text = self.request("GET", "/metrics")
        match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text.decode(), re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def alive(self) -> bool:
        try:
            return self.request("GET", "/healthz")[0] == 200
        except (OSError, http.client.HTTPException):
            return False


def wait_stored(
    client: Client, run_ids: Sequence[str], deadline: float, give_up: Callable[[], str | None] = lambda: None
) -> list[str]:
    """Wait until the read API finds every run, for at most ``deadline`` seconds; return the
    ones it does not. ``give_up`` may say why waiting longer is pointless (then it stops)."""
    missing = list(run_ids)
    until = time.monotonic() + deadline
    pause = 0.02
    while missing:
        missing = [run_id for run_id in missing if not client.run_stored(run_id)]
        if not missing or time.monotonic() > until or give_up():
            break
        time.sleep(pause)
        pause = min(pause * 1.5, 0.1)
    return missing


def new_run_id() -> str:
    return f"fuzz-canary-{uuid.uuid4().hex}"


def what_it_said(lines: Sequence[str], count: int = 12) -> list[str]:
    """A server's last log records and exception messages, without the tracebacks' frames."""
    said = [line.rstrip()[:500] for line in lines if line[:1].isdigit() or "Error:" in line or "Exception:" in line]
    return said[-count:]


def tail(stream: Any, lines: deque) -> threading.Thread:
    """Keep reading a server's output into ``lines`` (a bounded deque), so it never blocks on a
    full pipe."""

    def read() -> None:
        for line in stream:
            lines.append(line)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread

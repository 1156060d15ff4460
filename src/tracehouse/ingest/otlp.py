"""OTLP requests and responses, as the OTLP specification says, for both transports.

- protobuf and JSON bodies; JSON as OTLP/JSON: hex trace and span ids, lowerCamelCase or
  original field names, enums as integers, 64-bit integers as strings or numbers, unknown
  fields ignored;
- per-item validation: a span (or log record) whose ids cannot be stored is rejected and
  counted in the response's partial success, the rest of the request is kept;
- errors as ``google.rpc.Status`` (HTTP bodies; gRPC status details).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ID_FIELDS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}


class BadRequest(ValueError):
    """The request cannot be decoded: a client error, not retryable."""


@dataclass(frozen=True)
class Signal:
    """Traces or logs: their request and response types and what their items are called."""

    name: str
    request: type[Message]
    response: type[Message]
    rejected_field: str  # the partial success counter: rejected_spans / rejected_log_records


TRACES = Signal("traces", ExportTraceServiceRequest, ExportTraceServiceResponse, "rejected_spans")
LOGS = Signal("logs", ExportLogsServiceRequest, ExportLogsServiceResponse, "rejected_log_records")


def decode(signal: Signal, body: bytes, content_type: str) -> Message:
    """Parse a request body; raises :class:`BadRequest` with the reason."""
    request = signal.request()
    if content_type == JSON:
        try:
            document = json.loads(body or b"{}")
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
        if not isinstance(document, dict):
            raise BadRequest("an OTLP/JSON body must be a JSON object")
        try:
            json_format.ParseDict(_ids_to_base64(document), request, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, TypeError) as exc:
            raise BadRequest(f"the JSON body is not an OTLP {signal.name} request: {exc}") from None
        return request
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise BadRequest(f"the body is not a protobuf OTLP {signal.name} request: {exc}") from None
    return request


def _ids_to_base64(node: Any) -> Any:
    """OTLP/JSON writes ids in hex; protobuf's JSON mapping expects bytes in base64."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                try:
                    value = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise BadRequest(f"{key} {value!r} is not hex") from None
            out[key] = _ids_to_base64(value)
        return out
    if isinstance(node, list):
        return [_ids_to_base64(item) for item in node]
    return node


def _valid_span(span: Any) -> str | None:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return "trace id must be 16 bytes, not all zero"
    if len(span.span_id) != 8 or not any(span.span_id):
        return "span id must be 8 bytes, not all zero"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return "parent span id must be empty or 8 bytes"
    if span.end_time_unix_nano and span.end_time_unix_nano < span.start_time_unix_nano:
        return "span ends before it starts"
    return None


def _valid_log(record: Any) -> str | None:
    if record.trace_id and len(record.trace_id) != 16:
        return "trace id must be empty or 16 bytes"
    if record.span_id and len(record.span_id) != 8:
        return "span id must be empty or 8 bytes"
    return None


@dataclass
class Validated:
    request: Message  # the request with only the items that can be stored
    accepted: int
    rejected: int
    message: str  # why items were rejected (the first reasons), or ""


def validate(signal: Signal, request: Message) -> Validated:
    """Drop items that cannot be stored; count and explain them."""
    rejected = 0
    reasons: dict[str, int] = {}
    accepted = 0
    if signal is TRACES:
        containers = ((ss.spans, _valid_span) for rs in request.resource_spans for ss in rs.scope_spans)
    else:
        containers = ((sl.log_records, _valid_log) for rl in request.resource_logs for sl in rl.scope_logs)
    for items, check in containers:
        bad = []
        for index, item in enumerate(items):
            reason = check(item)
            if reason:
                bad.append(index)
                reasons[reason] = reasons.get(reason, 0) + 1
        for index in reversed(bad):
            del items[index]
        rejected += len(bad)
        accepted += len(items)
    message = "; ".join(f"{count} {signal.name[:-1]}(s) rejected: {reason}" for reason, count in reasons.items())
    return Validated(request, accepted, rejected, message)


def response(signal: Signal, validated: Validated | None, content_type: str) -> bytes:
    """The export response: empty on full success, partial success otherwise."""
    message = signal.response()
    if validated and validated.rejected:
        setattr(message.partial_success, signal.rejected_field, validated.rejected)
        message.partial_success.error_message = validated.message
    if content_type == JSON:
        return json_format.MessageToJson(message, indent=None).encode()
    return message.SerializeToString()


def error_status(code: int, message: str, details: list[Message] = ()) -> status_pb2.Status:
    status = status_pb2.Status(code=code, message=message)
    for detail in details:
        status.details.add().Pack(detail)
    return status


def status_body(status: status_pb2.Status, content_type: str) -> bytes:
    if content_type == JSON:
        return json_format.MessageToJson(status, indent=None).encode()
    return status.SerializeToString()


INVALID_ARGUMENT = code_pb2.INVALID_ARGUMENT
RESOURCE_EXHAUSTED = code_pb2.RESOURCE_EXHAUSTED
UNAVAILABLE = code_pb2.UNAVAILABLE
UNAUTHENTICATED = code_pb2.UNAUTHENTICATED

"""OTLP requests and responses, as the OTLP specification says, for both transports.

- protobuf and JSON bodies; JSON as OTLP/JSON: hex trace and span ids, lowerCamelCase or
  original field names, enums as integers, 64-bit integers as strings or numbers, unknown
  fields ignored;
- partial success: the items :mod:`checks` rejects are counted and explained in the response,
  the rest of the request is kept;
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
_TOO_DEEP = "the JSON body nests too deeply: attribute values may nest at most 100 levels"
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
    items: str  # what its items are called in messages: spans / log records


TRACES = Signal("traces", ExportTraceServiceRequest, ExportTraceServiceResponse, "rejected_spans", "span(s)")
LOGS = Signal("logs", ExportLogsServiceRequest, ExportLogsServiceResponse, "rejected_log_records", "log record(s)")


def decode(signal: Signal, body: bytes, content_type: str) -> Message:
    """Parse a request body; raises :class:`BadRequest` with the reason."""
    request = signal.request()
    if content_type == JSON:
        try:
            document = json.loads(body or b"{}")
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
        except RecursionError:
            raise BadRequest(_TOO_DEEP) from None
        if not isinstance(document, dict):
            raise BadRequest("an OTLP/JSON body must be a JSON object")
        try:
            json_format.ParseDict(_ids_to_base64(document), request, ignore_unknown_fields=True)
        except RecursionError:
            raise BadRequest(_TOO_DEEP) from None
        except (json_format.ParseError, ValueError, TypeError, ArithmeticError, UnicodeError, SystemError) as exc:
            # ArithmeticError: an Infinity where an integer goes; SystemError: protobuf's C parser,
            # handed a string it cannot encode (a lone surrogate)
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


def response(signal: Signal, rejected: int, message_text: str, content_type: str) -> bytes:
    """The export response: empty on full success, else partial success with how many items
    were rejected and why (or, with none rejected, a warning)."""
    message = signal.response()
    if rejected or message_text:
        setattr(message.partial_success, signal.rejected_field, rejected)
        message.partial_success.error_message = _encodable(message_text)
    if content_type == JSON:
        return json_format.MessageToJson(message, indent=None).encode()
    return message.SerializeToString()


def _encodable(text: str) -> str:
    """``text`` as protobuf can hold it: a lone surrogate (which a JSON body may hold, and a
    parse error quote) is written as its escape."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def error_status(code: int, message: str, details: list[Message] = ()) -> status_pb2.Status:
    status = status_pb2.Status(code=code, message=_encodable(message))
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

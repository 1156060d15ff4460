"""Canonical models to table rows: the column order of every insert, in one place.

Times go in as integer nanoseconds since the epoch (the tables' DateTime64(9) ticks), so no
time zone conversion happens on the way in.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from tracehouse.model import Event, LogRecord, Node, preview

SPAN_COLUMNS = (
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind",
    "ServiceName", "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration",
    "StatusCode", "StatusMessage", "Events.Timestamp", "Events.Name", "Events.Attributes",
    "Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes",
    "Tenant", "RunId", "ParentRunId", "RunRoot", "NodeType", "Status", "OperationName", "AgentName",
    "ConversationId", "UserId", "Model", "Provider", "InputTokens", "OutputTokens",
    "CacheReadTokens", "CacheCreationTokens", "ReasoningTokens", "CostUsd", "ErrorType",
    "InputPreview", "OutputPreview", "Input", "Output", "PayloadAttributes", "TtlDays", "PayloadTtlDays",
)  # fmt: skip

EVENT_COLUMNS = (
    "Tenant", "RunId", "ConversationId", "TraceId", "SpanId", "Seq", "Timestamp", "Kind", "Role",
    "Name", "Content", "ToolCallId", "Attributes", "TtlDays", "PayloadTtlDays",
)  # fmt: skip
# The Event model's fields, in EVENT_COLUMNS order (for reading rows back).
EVENT_FIELDS = (
    "tenant", "run_id", "conversation_id", "trace_id", "span_id", "seq", "timestamp", "kind", "role",
    "name", "content", "tool_call_id", "attributes", "ttl_days", "payload_ttl_days",
)  # fmt: skip

LOG_COLUMNS = (
    "Timestamp", "TraceId", "SpanId", "TraceFlags", "SeverityText", "SeverityNumber", "ServiceName",
    "Body", "ResourceAttributes", "ScopeName", "ScopeVersion", "LogAttributes", "Tenant", "RunId",
    "LogId", "TtlDays",
)  # fmt: skip

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_ns(unix_nano: int) -> datetime:
    """An aware UTC datetime from nanoseconds since the epoch (to the microsecond, exactly)."""
    return _EPOCH + timedelta(microseconds=unix_nano // 1000)


def ns(value: datetime) -> int:
    """Nanoseconds since the epoch of an aware (or naive UTC) datetime, exactly."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def span_row(node: Node) -> list:
    payload_ttl = min(node.payload_ttl_days, node.ttl_days)
    return [
        ns(node.started_at), node.trace_id, node.span_id, node.parent_span_id, node.trace_state,
        node.name, node.span_kind, node.service_name, node.resource_attributes, node.scope_name,
        node.scope_version, node.attributes, node.duration_ns, node.otel_status_code,
        node.status_message,
        [ns(e.timestamp) for e in node.events], [e.name for e in node.events],
        [e.attributes for e in node.events],
        [link.trace_id for link in node.links], [link.span_id for link in node.links],
        [link.trace_state for link in node.links], [link.attributes for link in node.links],
        node.tenant, node.run_id, node.parent_run_id, node.run_root, node.type.value,
        node.status.value, node.operation, node.agent_name, node.conversation_id, node.user_id,
        node.model, node.provider, node.usage.input_tokens, node.usage.output_tokens,
        node.usage.cache_read_tokens, node.usage.cache_creation_tokens, node.usage.reasoning_tokens,
        node.cost_usd, node.error_type, preview(node.input), preview(node.output), node.input, node.output,
        node.payload_attributes,
        node.ttl_days, payload_ttl,
    ]  # fmt: skip


def event_row(event: Event) -> list:
    return [
        event.tenant, event.run_id, event.conversation_id, event.trace_id, event.span_id, event.seq,
        ns(event.timestamp), event.kind.value, event.role, event.name, event.content,
        event.tool_call_id, event.attributes, event.ttl_days,
        min(event.payload_ttl_days, event.ttl_days),
    ]  # fmt: skip


def log_id(record: LogRecord) -> str:
    """OTLP logs have no id: derive one from what identifies the record, for deduplication."""
    digest = hashlib.blake2b(digest_size=12)
    for part in (str(ns(record.timestamp)), record.trace_id, record.span_id, record.service_name,
                 str(record.severity_number), record.body):  # fmt: skip
        digest.update(part.encode())
        digest.update(b"\x00")
    for key in sorted(record.attributes):
        digest.update(f"{key}={record.attributes[key]}\x00".encode())
    return digest.hexdigest()


def log_row(record: LogRecord) -> list:
    return [
        ns(record.timestamp), record.trace_id, record.span_id, record.trace_flags,
        record.severity_text, record.severity_number, record.service_name, record.body,
        record.resource_attributes, record.scope_name, record.scope_version, record.attributes,
        record.tenant, record.run_id, log_id(record), record.ttl_days,
    ]  # fmt: skip

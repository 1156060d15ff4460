"""The canonical rows of tracehouse: what every convention is normalized into.

A *run* is one invocation of an agent (an ``invoke_agent`` span and everything under it). A
*node* is any span inside a run: an LLM call, a tool call, a step, a sub-agent. An *event* is
one ordered item of a run or a conversation (a message, a tool call and its result, a
checkpoint, ...), the unit of replay. A *log record* is an OTel log correlated with a span.

Times are timezone-aware UTC datetimes; durations are nanoseconds, as in OTLP.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tracehouse.vocabulary import (  # noqa: F401 (re-exported: the model's words)
    DEFAULT_RUN_IDLE_TIMEOUT,
    DEFAULT_TENANT,
    DEFAULT_TTL_DAYS,
    MAX_COST_USD,
    MAX_TOKENS,
    MAX_TTL_DAYS,
    NODE_TYPE_NAMES,
    PREVIEW_CHARS,
    EventKind,
    NodeType,
    Status,
)


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Usage(_Row):
    """Token usage of an LLM call, or the sum over a run's LLM calls."""

    input_tokens: int = Field(0, ge=0)
    output_tokens: int = Field(0, ge=0)
    cache_read_tokens: int = Field(0, ge=0)
    cache_creation_tokens: int = Field(0, ge=0)
    reasoning_tokens: int = Field(0, ge=0)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{name: getattr(self, name) + getattr(other, name) for name in Usage.model_fields})


def _utc(value: datetime) -> datetime:
    """Naive datetimes are UTC (ClickHouse returns them so); aware ones are converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


class SpanEvent(_Row):
    """An OTel span event, kept as sent."""

    timestamp: datetime
    name: str
    attributes: dict[str, str] = Field(default_factory=dict)

    utc_times = field_validator("timestamp")(_utc)


class SpanLink(_Row):
    """An OTel span link, kept as sent."""

    trace_id: str
    span_id: str
    trace_state: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)


class Node(_Row):
    """One span of a run, in canonical form, with its raw OTel fields kept beside.

    ``attributes`` holds the span's summary attributes and ``payload_attributes`` its large
    content attributes (messages, tool arguments and results); together they are everything the
    span carried, so nothing a convention sent is lost.
    """

    tenant: str = DEFAULT_TENANT
    trace_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    span_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    parent_span_id: str = Field("", pattern=r"^([0-9a-f]{16})?$")
    trace_state: str = ""
    name: str
    span_kind: str = "Internal"
    service_name: str = ""
    scope_name: str = ""
    scope_version: str = ""
    resource_attributes: dict[str, str] = Field(default_factory=dict)
    attributes: dict[str, str] = Field(default_factory=dict)
    payload_attributes: dict[str, str] = Field(default_factory=dict)
    events: list[SpanEvent] = Field(default_factory=list)
    links: list[SpanLink] = Field(default_factory=list)
    started_at: datetime
    duration_ns: int = Field(0, ge=0)
    otel_status_code: str = "Unset"  # Unset | Ok | Error, as the Collector's exporter writes it
    status_message: str = ""

    # canonical
    run_id: str = ""
    parent_run_id: str = ""
    run_root: bool = False  # the span that opened its run (the run's invoke_agent span)
    type: NodeType = NodeType.OTHER
    status: Status = Status.COMPLETED
    operation: str = ""
    agent_name: str = ""
    conversation_id: str = ""
    user_id: str = ""
    model: str = ""
    provider: str = ""
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = Field(0.0, ge=0)
    input: str = ""
    output: str = ""
    error_type: str = ""
    ttl_days: int = Field(DEFAULT_TTL_DAYS, ge=1, le=MAX_TTL_DAYS)
    payload_ttl_days: int = Field(DEFAULT_TTL_DAYS, ge=1, le=MAX_TTL_DAYS)

    utc_times = field_validator("started_at")(_utc)

    @property
    def ended_at(self) -> datetime:
        return self.started_at + timedelta(microseconds=self.duration_ns / 1000)


class Run(_Row):
    """One agent run: the summary row behind the history list."""

    tenant: str = DEFAULT_TENANT
    run_id: str
    parent_run_id: str = ""
    trace_id: str = ""
    root_span_id: str = ""
    agent_name: str = ""
    service_name: str = ""
    conversation_id: str = ""
    user_id: str = ""
    status: Status = Status.RUNNING
    started_at: datetime
    ended_at: datetime | None = None
    duration_ns: int = Field(0, ge=0)
    node_count: int = Field(0, ge=0)
    failed_nodes: int = Field(0, ge=0)
    llm_calls: int = Field(0, ge=0)
    tool_calls: int = Field(0, ge=0)
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = Field(0.0, ge=0)
    input_preview: str = ""
    output_preview: str = ""
    input: str = ""
    output: str = ""
    error_message: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)
    ttl_days: int = Field(DEFAULT_TTL_DAYS, ge=1, le=MAX_TTL_DAYS)

    utc_times = field_validator("started_at", "ended_at")(_utc_or_none)


class Event(_Row):
    """One ordered item of a run or a conversation: the unit of replay.

    Order is (timestamp, span_id, seq): ``seq`` orders the items one span produced.
    """

    tenant: str = DEFAULT_TENANT
    run_id: str
    conversation_id: str = ""
    trace_id: str
    span_id: str
    seq: int = Field(0, ge=0)
    timestamp: datetime
    kind: EventKind
    role: str = ""  # system | user | assistant | tool, for messages
    name: str = ""  # tool name, event name, checkpoint id
    content: str = ""  # text or JSON
    tool_call_id: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)
    ttl_days: int = Field(DEFAULT_TTL_DAYS, ge=1, le=MAX_TTL_DAYS)
    payload_ttl_days: int = Field(DEFAULT_TTL_DAYS, ge=1, le=MAX_TTL_DAYS)

    utc_times = field_validator("timestamp")(_utc)


class LogRecord(_Row):
    """An OTel log record, correlated with its span and run."""

    tenant: str = DEFAULT_TENANT
    timestamp: datetime
    trace_id: str = ""
    span_id: str = ""
    trace_flags: int = 0
    severity_text: str = ""
    severity_number: int = Field(0, ge=0, le=24)
    service_name: str = ""
    body: str = ""
    resource_attributes: dict[str, str] = Field(default_factory=dict)
    scope_name: str = ""
    scope_version: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)
    run_id: str = ""
    ttl_days: int = Field(DEFAULT_TTL_DAYS, ge=1, le=MAX_TTL_DAYS)

    utc_times = field_validator("timestamp")(_utc)


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """A short single-line preview of a payload, for lists (whitespace runs become one space)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"

"""The answers of the read API: the response models every face returns, and its not-found error.

The HTTP API serves these shapes, the read service (:mod:`tracehouse.store.reads`) builds them
from the store, and the Python client (:mod:`tracehouse.client`) parses them back. This module
needs pydantic only, so the client loads neither FastAPI nor the store. ``docs/api.md`` says
what each field means.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class NotFound(LookupError):
    """What was asked for does not exist, or is another tenant's (which looks the same). The
    HTTP API answers it with a 404; the client raises :class:`tracehouse.client.NotFound`, a
    subclass, for a 404, so ``except NotFound`` works with either face."""


# --- runs: the seed's history and logs --------------------------------------------------------


class HistoryItem(BaseModel):
    run_id: str
    status: str  # success | failed | running | cancelled | incomplete
    started_at: str  # ISO 8601, UTC
    duration: str  # "45s", "1.5s"
    input: str  # a short preview
    output: str  # a short preview
    node_count: int
    tokens_used: int
    cost_cents: float
    agent: str = ""  # the run's agent ("" while none of its spans names one); beside the seed's fields


class LogNode(BaseModel):
    id: str
    type: str
    input: str
    output: str
    time: str  # the node's duration, like "1.5s"
    status: str
    error_message: str
    metadata: dict[str, Any]


class LogError(BaseModel):
    node_id: str
    type: str
    message: str


class LogSummary(BaseModel):
    total_nodes: int
    successful_nodes: int
    failed_nodes: int
    total_duration: str
    tokens_used: int
    cost_cents: float


class LogsResponse(BaseModel):
    run_id: str
    nodes: list[LogNode]
    errors: list[LogError]
    final_output: str
    summary: LogSummary


# --- replay and resume --------------------------------------------------------------------------


class ReplayEvent(BaseModel):
    timestamp: datetime
    kind: str
    role: str
    name: str
    content: str
    tool_call_id: str
    run_id: str
    span_id: str
    seq: int


class Replay(BaseModel):
    mode: str
    events: list[ReplayEvent]


class Checkpoint(BaseModel):
    id: str
    state: str  # as recorded: usually JSON
    timestamp: datetime


class Resume(BaseModel):
    run_id: str
    messages: list[dict[str, Any]]  # OpenAI chat messages
    checkpoint: Checkpoint | None


# --- deletion and retention ---------------------------------------------------------------------


class Deleted(BaseModel):
    removed: dict[str, int]  # rows by table
    total: int


class RetentionSettings(BaseModel):
    retention_days: int | None = None  # None: the server's default
    payload_retention_days: int | None = None


# --- the quarantine (server-side state, not a store read) ---------------------------------------


class QuarantinedRecord(BaseModel):
    """One quarantined export request, as the API and the CLI show it."""

    id: str
    tenant: str  # "" when the server has no API keys and the request names its own tenants
    signal: str  # traces or logs
    error: str  # what the store said, first 2,000 characters
    quarantined_at: datetime
    acknowledged_at: datetime
    size_bytes: int


# --- the runs page -------------------------------------------------------------------------------


class RunRow(BaseModel):
    """One top-level run as the runs page lists it (the runs table's small columns only)."""

    run_id: str
    agent: str
    status: str  # completed | failed | running | cancelled | incomplete
    started_at: datetime
    duration_ns: int
    duration: str  # "45s", "1.5s"
    node_count: int
    tokens: int
    cost_usd: float
    input: str  # a short preview
    output: str  # a short preview
    user_id: str
    conversation_id: str


class RunsPage(BaseModel):
    """One page of the runs page's list: the runs started in [since, until) that the filters
    select, newest first."""

    runs: list[RunRow]
    since: datetime
    until: datetime
    skip: int
    limit: int
    more: bool  # another page follows


class ActivityBucket(BaseModel):
    start: datetime
    runs: int
    failed: int
    cost_usd: float


class Activity(BaseModel):
    """Runs, failed runs and cost per bucket of run start over [since, until): every bucket,
    empty ones too, oldest first."""

    since: datetime
    until: datetime
    bucket_seconds: int
    buckets: list[ActivityBucket]


# --- the run page -----------------------------------------------------------------------------


class TreeNode(BaseModel):
    """One node of a run's tree, without its payloads (``node`` has them)."""

    span_id: str
    parent_span_id: str
    depth: int  # 0: the run's root span (or a span whose parent is not in the run)
    name: str
    type: str  # llm | tool | agent | step | ...
    status: str  # success | failed | running | cancelled
    started_at: datetime
    offset_ns: int  # from the run's start
    duration_ns: int
    duration: str  # "1.5s"
    model: str
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float
    error_type: str
    error_message: str
    sub_run_id: str  # a sub-agent run's id (this node is its root span), else ""
    agent: str


class RunTree(BaseModel):
    """A run and its nodes in the order they ran, nested: each parent before its children."""

    run_id: str
    agent: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    duration_ns: int
    duration: str
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float
    parent_run_id: str
    conversation_id: str
    trace_id: str
    input_preview: str
    output_preview: str
    error_message: str
    nodes: list[TreeNode]
    # ``nodes`` may be one page of the tree: it starts at ``offset``, of ``node_count`` in all.
    node_count: int = 0
    offset: int = 0
    extent_ns: int = 0  # from the run's start to the last end of its run or of any node


class ChatPart(BaseModel):
    type: str  # text | reasoning | tool_call | tool_call_response | other
    content: str = ""  # text, reasoning, a tool's response, or the part as JSON
    name: str = ""  # a tool call's tool
    id: str = ""  # a tool call's id
    arguments: str = ""  # a tool call's arguments, JSON as sent


class ChatMessage(BaseModel):
    role: str  # system | user | assistant | tool
    parts: list[ChatPart]
    finish_reason: str = ""


class Convention(BaseModel):
    name: str  # otel-genai | otel-genai-pre-1.37 | openinference | openllmetry | langfuse | tracehouse | plain
    label: str
    attributes: list[str]  # the attribute (or span event) names that show it


class ExceptionEvent(BaseModel):
    type: str
    message: str
    stacktrace: str
    timestamp: datetime


class SpanEventItem(BaseModel):
    timestamp: datetime
    name: str
    attributes: dict[str, str]


class NodeDetail(BaseModel):
    """One node with its payloads: the messages of an LLM call, a tool's arguments and result,
    its error, and how its span was read (conventions, every raw attribute)."""

    run_id: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    type: str
    status: str
    started_at: datetime
    duration_ns: int
    duration: str
    operation: str
    model: str
    provider: str
    parameters: dict[str, str]  # the request's parameters (temperature, max_tokens, ...)
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    reasoning_tokens: int
    cost_usd: float
    input: str
    output: str
    input_messages: list[ChatMessage]  # an LLM call's, system instructions first
    output_messages: list[ChatMessage]
    tool_name: str
    tool_call_id: str
    error_type: str
    error_message: str
    exception: ExceptionEvent | None
    sub_run_id: str
    agent: str
    conventions: list[Convention]
    attributes: dict[str, str]  # every span attribute as sent, payloads included
    resource_attributes: dict[str, str]
    events: list[SpanEventItem]
    scope_name: str
    span_kind: str
    otel_status_code: str


# --- conversation, agent and compare pages ------------------------------------------------------


class ConversationRun(BaseModel):
    """One run of a conversation, with its events (the replay of that run)."""

    run: HistoryItem
    events: list[ReplayEvent]


class Conversation(BaseModel):
    conversation_id: str
    mode: str
    runs: list[ConversationRun]  # oldest first


class AgentPeriod(BaseModel):
    """An agent's runs started in one hour or day."""

    start: datetime  # UTC
    runs: int
    completed: int
    failed: int
    p50_seconds: float  # of the runs that finished in the period (0: none did)
    p95_seconds: float
    tokens: int
    cost_usd: float


class NodePerformance(BaseModel):
    name: str
    type: str
    executions: int
    failures: int
    failure_rate: float
    p50_seconds: float
    p95_seconds: float


class ModelUsage(BaseModel):
    model: str
    llm_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class AgentOverview(BaseModel):
    agent: str
    runs: int
    completed: int
    failed: int
    incomplete: int
    running: int
    success_rate: float  # completed out of the runs no longer running
    p50_seconds: float
    p95_seconds: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    bucket: str  # hour | day: the length of each period of the timeline
    timeline: list[AgentPeriod]  # oldest first
    slowest_nodes: list[NodePerformance]  # by p95
    failing_nodes: list[NodePerformance]  # by failures, only nodes that failed
    models: list[ModelUsage]  # most expensive first
    recent_runs: list[HistoryItem]  # newest first


class CompareStep(BaseModel):
    """One node of a run as the comparison shows it."""

    span_id: str
    type: str
    name: str
    status: str
    model: str
    input: str  # messages sent, tool arguments
    output: str  # the answer, tool result
    input_tokens: int
    output_tokens: int
    cost_usd: float
    duration_ns: int
    duration: str
    error_message: str


class CompareRow(BaseModel):
    """A row of the aligned steps: a step of both runs (same type and name), or of one only."""

    change: str  # same | changed | only_a | only_b
    a: CompareStep | None
    b: CompareStep | None
    differences: list[str]  # of a changed row: input, output, model, status, tokens, cost


class CompareRun(BaseModel):
    run_id: str
    agent: str
    status: str
    started_at: datetime
    duration_ns: int
    duration: str
    input: str
    output: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    steps: int


class Comparison(BaseModel):
    a: CompareRun
    b: CompareRun
    rows: list[CompareRow]  # a's and b's steps in order, aligned by (type, name)
    same: int
    changed: int
    only_a: int
    only_b: int

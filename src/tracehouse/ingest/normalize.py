"""OTLP spans, of any convention, to canonical nodes and replay events.

Conventions read, in this order of precedence for each field: tracehouse.* and OpenTelemetry
GenAI (current names, then the pre-1.37 ones and their per-message span events), OpenInference,
OpenLLMetry/Traceloop, Langfuse, and plain OTel (span names, status, exception events). Nothing
is dropped: every attribute stays on the row, split into summary and payload maps.

Runs. A span that carries ``tracehouse.run.id`` belongs to that run (the tracehouse SDK stamps
it on every span inside a run, including other instrumentors' spans), and its ``invoke_agent``
span is the run's root. Any other span belongs to the run of its trace (run id = trace id),
whose root is the trace's root span; its nested agent spans are agent nodes of that run. Both
rules look at the span alone, so the result never depends on delivery order.

Replay events of an LLM call are the messages new to that call (those after the last assistant
message of its input; all of them on a first call), then its output, so a run's transcript
holds each message once without any state across spans.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tracehouse import conventions, pricing, semconv
from tracehouse.conventions import node_type
from tracehouse.model import (
    DEFAULT_TENANT,
    MAX_COST_USD,
    MAX_TTL_DAYS,
    Event,
    EventKind,
    LogRecord,
    Node,
    NodeType,
    SpanEvent,
    SpanLink,
    Status,
    Usage,
)
from tracehouse.store.retention import Retention
from tracehouse.store.rows import from_ns

SPAN_KINDS = {0: "Unspecified", 1: "Internal", 2: "Server", 3: "Client", 4: "Producer", 5: "Consumer"}
STATUS_CODES = {0: "Unset", 1: "Ok", 2: "Error"}


# --- attribute values ---------------------------------------------------------------------------


def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as a plain Python value."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, which)


def attribute_string(value: Any) -> str:
    """An attribute value as the tables store it (the Collector exporter's encoding): strings
    as they are, booleans as true/false, numbers as Python writes them, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def attributes(kvs: Iterable[KeyValue]) -> dict[str, str]:
    """OTLP attributes as the string map the tables store (the Collector exporter's encoding)."""
    return {kv.key: attribute_string(any_value(kv.value)) for kv in kvs}


def _stated_cost(text: str) -> float | None:
    """A cost the span states, when it is a number a call can cost: finite, from 0 to
    :data:`MAX_COST_USD`; else None (the model's price applies)."""
    try:
        cost = float(text)
    except ValueError:
        return None
    return cost if 0 <= cost <= MAX_COST_USD else None  # NaN fails both comparisons


def _first(attrs: dict[str, str], *keys: str) -> str:
    for key in keys:
        value = attrs.get(key)
        if value:
            return value
    return ""


def _json(raw: str) -> Any:
    if not raw or raw[0] not in "[{":  # most attributes are not JSON: no exception for them
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return None


# --- messages -----------------------------------------------------------------------------------


def _text_message(role: str, content: Any) -> dict:
    return {"role": role or "user", "parts": [{"type": "text", "content": attribute_string(content)}]}


def _flattened_messages(attrs: dict[str, str], prefix: str, role_key: str, content_key: str) -> list[dict]:
    """Messages flattened into ``<prefix>.<n>.<field>`` attributes (OpenInference, Traceloop)."""
    fields: dict[int, dict[str, str]] = {}
    start = len(prefix) + 1
    for key, value in attrs.items():
        if key.startswith(prefix + "."):
            index, _, rest = key[start:].partition(".")
            if index.isdigit():
                fields.setdefault(int(index), {})[rest] = value
    messages = []
    for index in sorted(fields):
        f = fields[index]
        message = _text_message(f.get(role_key, ""), f.get(content_key, ""))
        calls = _flattened_tool_calls(f)
        if calls:
            message["parts"] = [p for p in message["parts"] if p["content"]] + calls
        call_id = f.get(semconv.OI_MESSAGE_TOOL_CALL_ID) or f.get(semconv.FLAT_TOOL_CALL_ID)
        if call_id:
            message["parts"] = [{"type": "tool_call_response", "id": call_id, "response": f.get(content_key, "")}]
        messages.append(message)
    return messages


def _flattened_tool_calls(fields: dict[str, str]) -> list[dict]:
    calls: dict[int, dict] = {}
    for key, value in fields.items():
        for prefix in (semconv.OI_MESSAGE_TOOL_CALLS + ".", semconv.FLAT_TOOL_CALLS + "."):
            if key.startswith(prefix):
                index, _, rest = key[len(prefix) :].partition(".")
                rest = rest.removeprefix(semconv.OI_TOOL_CALL_PREFIX).removeprefix("function.")
                if index.isdigit():
                    call = calls.setdefault(int(index), {"type": "tool_call"})
                    if rest == "id":
                        call["id"] = value
                    elif rest == "name":
                        call["name"] = value
                    elif rest == "arguments":
                        call["arguments"] = _json(value) if _json(value) is not None else value
    return [calls[i] for i in sorted(calls)]


# The per-message span events of GenAI before 1.37: input messages by role, and the answer.
LEGACY_MESSAGE_ROLES = {
    semconv.EVENT_GEN_AI_SYSTEM_MESSAGE: "system",
    semconv.EVENT_GEN_AI_USER_MESSAGE: "user",
    semconv.EVENT_GEN_AI_ASSISTANT_MESSAGE: "assistant",
    semconv.EVENT_GEN_AI_TOOL_MESSAGE: "tool",
}
LEGACY_MESSAGE_EVENTS = (*LEGACY_MESSAGE_ROLES, semconv.EVENT_GEN_AI_CHOICE)


def _legacy_event_messages(events: Iterable[Any]) -> tuple[list[dict], list[dict]]:
    """Messages from the per-message span events of GenAI before 1.37."""
    inputs, outputs = [], []
    for event in events:
        attrs = attributes(event.attributes)
        if event.name in LEGACY_MESSAGE_ROLES:
            content = attrs.get(semconv.MESSAGE_EVENT_CONTENT) or attrs.get(semconv.GEN_AI_PROMPT, "")
            message = _text_message(LEGACY_MESSAGE_ROLES[event.name], content)
            call_id = attrs.get(semconv.MESSAGE_EVENT_ID)
            if event.name == semconv.EVENT_GEN_AI_TOOL_MESSAGE and call_id:
                message["parts"] = [{"type": "tool_call_response", "id": call_id, "response": content}]
            inputs.append(message)
        elif event.name == semconv.EVENT_GEN_AI_CHOICE:
            body = _json(attrs.get(semconv.MESSAGE_EVENT_MESSAGE, "")) or {}
            content = body.get("content") if isinstance(body, dict) else None
            if content is None:
                content = attrs.get(semconv.MESSAGE_EVENT_CONTENT, "")
            message = _text_message("assistant", content)
            if attrs.get(semconv.MESSAGE_EVENT_FINISH_REASON):
                message["finish_reason"] = attrs[semconv.MESSAGE_EVENT_FINISH_REASON]
            outputs.append(message)
    return inputs, outputs


# Flattened messages, ``<prefix>.<n>.<field>``, in the order they are looked for: (prefix, role
# field, content field) of OpenInference, then of OpenLLMetry/Traceloop.
FLATTENED_INPUTS = (
    (semconv.OI_LLM_INPUT_MESSAGES, semconv.OI_MESSAGE_ROLE, semconv.OI_MESSAGE_CONTENT),
    (semconv.GEN_AI_PROMPT, semconv.FLAT_ROLE, semconv.FLAT_CONTENT),
)
FLATTENED_OUTPUTS = (
    (semconv.OI_LLM_OUTPUT_MESSAGES, semconv.OI_MESSAGE_ROLE, semconv.OI_MESSAGE_CONTENT),
    (semconv.GEN_AI_COMPLETION, semconv.FLAT_ROLE, semconv.FLAT_CONTENT),
)


def _first_flattened(attrs: dict[str, str], sources: tuple[tuple[str, str, str], ...]) -> list[dict]:
    for prefix, role_key, content_key in sources:
        messages = _flattened_messages(attrs, prefix, role_key, content_key)
        if messages:
            return messages
    return []


@dataclass
class _Messages:
    """An LLM call's messages in the GenAI JSON shape, and their JSON text for the node."""

    inputs: list
    outputs: list
    system: str
    input_json: str
    output_json: str


def _messages(attrs: dict[str, str], events: Iterable[Any]) -> _Messages:
    """The messages, from GenAI JSON attributes, else flattened ones, else message events. The
    node's JSON is the attribute as it came, else made from the messages found."""
    stated_inputs = attrs.get(semconv.GEN_AI_INPUT_MESSAGES, "")
    stated_outputs = attrs.get(semconv.GEN_AI_OUTPUT_MESSAGES, "")
    inputs = _json(stated_inputs)
    outputs = _json(stated_outputs)
    system = attrs.get(semconv.GEN_AI_SYSTEM_INSTRUCTIONS, "")
    input_json = stated_inputs if isinstance(inputs, list) and inputs else ""
    output_json = stated_outputs if isinstance(outputs, list) and outputs else ""
    if not isinstance(inputs, list):
        inputs = _first_flattened(attrs, FLATTENED_INPUTS)
    if not isinstance(outputs, list):
        outputs = _first_flattened(attrs, FLATTENED_OUTPUTS)
    if not inputs and not outputs:
        inputs, outputs = _legacy_event_messages(events)
    return _Messages(
        inputs,
        outputs,
        system,
        input_json or (json.dumps(inputs, ensure_ascii=False) if inputs else ""),
        output_json or (json.dumps(outputs, ensure_ascii=False) if outputs else ""),
    )


# --- node type (the rules: tracehouse.conventions), run, status -----------------------------------


# --- the normalizer -------------------------------------------------------------------------------


# Where each field is read from, first non-empty value wins (the engine's normalizer reads the
# same tables: see normalize_sql).
# The rules of conventions, as Python functions (the engine's normalizer compiles the same rules).
_MODEL, _PROVIDER = conventions.MODEL.python(), conventions.PROVIDER.python()
_AGENT, _OPERATION, _STATUS = conventions.AGENT.python(), conventions.OPERATION.python(), conventions.STATUS.python()
_CONVERSATION, _USER = conventions.CONVERSATION.python(), conventions.USER.python()
_TOOL_NAME, _TOOL_CALL_ID = conventions.TOOL_NAME.python(), conventions.TOOL_CALL_ID.python()
_TOKENS = {field: rule.python() for field, rule in conventions.TOKENS.items()}
COST_KEYS = (semconv.TRACEHOUSE_COST_USD, semconv.OI_LLM_COST_TOTAL)
TOOL_NAME_KEYS = (semconv.GEN_AI_TOOL_NAME, semconv.OI_TOOL_NAME)
TOOL_CALL_ID_KEYS = (semconv.GEN_AI_TOOL_CALL_ID, semconv.OI_TOOL_CALL_ID)
INPUT_KEYS = (
    semconv.TRACEHOUSE_NODE_INPUT,
    semconv.GEN_AI_TOOL_CALL_ARGUMENTS,
    semconv.OI_INPUT_VALUE,
    semconv.TRACELOOP_ENTITY_INPUT,
    semconv.LANGFUSE_OBSERVATION_INPUT,
    semconv.GEN_AI_RETRIEVAL_QUERY_TEXT,
)
OUTPUT_KEYS = (
    semconv.TRACEHOUSE_NODE_OUTPUT,
    semconv.GEN_AI_TOOL_CALL_RESULT,
    semconv.OI_OUTPUT_VALUE,
    semconv.TRACELOOP_ENTITY_OUTPUT,
    semconv.LANGFUSE_OBSERVATION_OUTPUT,
    semconv.GEN_AI_RETRIEVAL_DOCUMENTS,
)
# A run's root reads its run's input and output first, and Langfuse's trace-level ones last.
ROOT_INPUT_KEYS = (semconv.TRACEHOUSE_RUN_INPUT, *INPUT_KEYS, semconv.LANGFUSE_TRACE_INPUT)
ROOT_OUTPUT_KEYS = (semconv.TRACEHOUSE_RUN_OUTPUT, *OUTPUT_KEYS, semconv.LANGFUSE_TRACE_OUTPUT)


def normalize_spans(
    resource_spans: Iterable[Any],
    *,
    tenant: str = "",
    retention_for: Callable[[str], Retention] | None = None,
    price: Pricer = pricing.cost_usd,
) -> tuple[list[Node], list[Event]]:
    """Every span of an ExportTraceServiceRequest's resource_spans, normalized.

    ``tenant`` is the tenant the transport assigned (an API key's); empty when the server has
    no keys, and then a span may name its own (``tracehouse.tenant``), else the default one.
    ``retention_for`` gives a tenant's retention settings.
    """
    retention_for = retention_for or _default_retention
    nodes: list[Node] = []
    events: list[Event] = []
    for rs in resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                node, span_events = normalize_span(
                    span,
                    resource,
                    ss.scope.name,
                    ss.scope.version,
                    tenant=tenant,
                    retention_for=retention_for,
                    price=price,
                )
                nodes.append(node)
                events.extend(span_events)
    return nodes, events


def _default_retention(tenant: str) -> Retention:
    return Retention()


def _ttl(raw: str, default: int) -> int:
    try:
        days = int(float(raw))
    except (TypeError, ValueError, OverflowError):  # not a number, or NaN or infinite
        return default
    return min(max(days, 1), MAX_TTL_DAYS)


Pricer = Callable[..., float | None]


def normalize_span(
    span: Span,
    resource: dict[str, str],
    scope_name: str,
    scope_version: str,
    *,
    tenant: str = "",
    retention_for: Callable[[str], Retention] | None = None,
    price: Pricer = pricing.cost_usd,
) -> tuple[Node, list[Event]]:
    """One span to its node and its replay events. Ids must already be valid."""
    raw = attributes(span.attributes)
    summary = {k: v for k, v in raw.items() if not semconv.is_payload_attribute(k)}
    payload = {k: v for k, v in raw.items() if semconv.is_payload_attribute(k)}
    both = {**resource, **raw}  # span attributes win over resource attributes
    tenant = tenant or both.get(semconv.TRACEHOUSE_TENANT) or DEFAULT_TENANT
    retention = (retention_for or _default_retention)(tenant)

    trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
    parent = span.parent_span_id.hex()
    kind = node_type(raw)
    explicit_run = both.get(semconv.TRACEHOUSE_RUN_ID, "")
    if explicit_run:
        # The span that starts the run: an invoke_agent span (said, not derived from a node
        # type) that is not marked as a node of the run (a typed node, or another
        # instrumentor's agent span inside the run).
        run_root = (
            raw.get(semconv.GEN_AI_OPERATION_NAME) == semconv.OP_INVOKE_AGENT
            and semconv.TRACEHOUSE_NODE_TYPE not in raw
        )
        run_id = explicit_run
    else:
        run_id, run_root = trace_id, not parent

    fields = {"name": span.name, "status_code": span.status.code, "type": kind.value, "run_root": run_root}
    model = _MODEL(raw, both, fields)
    usage, cost = _usage_and_cost(raw, kind, model, price)

    messages = _messages(raw, span.events) if kind is NodeType.LLM else _NO_MESSAGES
    node_input, node_output = _io(kind, raw, messages, run_root)

    status = Status(_STATUS(raw, both, fields))
    events = [
        SpanEvent.model_construct(timestamp=from_ns(e.time_unix_nano), name=e.name, attributes=attributes(e.attributes))
        for e in span.events
    ]
    exception = next((e.attributes for e in events if e.name == semconv.EXCEPTION_EVENT), {})
    ttl = _ttl(both.get(semconv.TRACEHOUSE_TTL_DAYS, ""), retention.ttl_days)

    node = Node.model_construct(
        tenant=tenant,
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        trace_state=span.trace_state,
        name=span.name,
        span_kind=SPAN_KINDS.get(span.kind, "Unspecified"),
        service_name=resource.get(semconv.SERVICE_NAME, ""),
        scope_name=scope_name,
        scope_version=scope_version,
        resource_attributes=resource,
        attributes=summary,
        payload_attributes=payload,
        events=events,
        links=[
            SpanLink.model_construct(
                trace_id=link.trace_id.hex(),
                span_id=link.span_id.hex(),
                trace_state=link.trace_state,
                attributes=attributes(link.attributes),
            )
            for link in span.links
        ],
        started_at=from_ns(span.start_time_unix_nano),
        duration_ns=max(0, span.end_time_unix_nano - span.start_time_unix_nano),
        otel_status_code=STATUS_CODES.get(span.status.code, "Unset"),
        status_message=span.status.message or exception.get(semconv.EXCEPTION_MESSAGE, ""),
        run_id=run_id,
        parent_run_id=both.get(semconv.TRACEHOUSE_PARENT_RUN_ID, "") if run_root else "",
        run_root=run_root,
        type=kind,
        status=status,
        operation=_OPERATION(raw, both, fields),
        agent_name=_AGENT(raw, both, fields),
        conversation_id=_CONVERSATION(raw, both, fields),
        user_id=_USER(raw, both, fields),
        model=model,
        provider=_PROVIDER(raw, both, fields),
        usage=usage,
        cost_usd=cost,
        input=node_input,
        output=node_output,
        error_type=_first(raw, semconv.ERROR_TYPE)
        or exception.get(semconv.EXCEPTION_TYPE, "")
        or ("Error" if status is Status.FAILED else ""),
        ttl_days=ttl,
        payload_ttl_days=min(ttl, retention.payload_ttl_days),
    )
    return node, list(_replay_events(node, raw, messages))


# Where each token count is read from, first found wins: GenAI, its earlier names, Traceloop's,
# OpenInference's.
# Langfuse's usage_details JSON names the same counts its own way.
_LANGFUSE_TOKEN_KEYS = {"input_tokens": ("input", "prompt_tokens"), "output_tokens": ("output", "completion_tokens")}
_LANGFUSE_TOKENS = {field: conventions.TokenCount(keys).python() for field, keys in _LANGFUSE_TOKEN_KEYS.items()}


def _usage_and_cost(raw: dict[str, str], kind: NodeType, model: str, price: Pricer) -> tuple[Usage, float]:
    counts = {field: read(raw, raw, {}) for field, read in _TOKENS.items()}
    details = _json(raw.get(semconv.LANGFUSE_OBSERVATION_USAGE_DETAILS, ""))
    details = {k: attribute_string(v) for k, v in details.items()} if isinstance(details, dict) else {}
    for field, read in _LANGFUSE_TOKENS.items():
        counts[field] = counts[field] or read(details, details, {})
    usage = Usage.model_construct(**counts)
    stated = _first(raw, *COST_KEYS)
    if not stated:
        cost_details = _json(raw.get(semconv.LANGFUSE_OBSERVATION_COST_DETAILS, "")) or {}
        stated = attribute_string(cost_details.get("total", "")) if isinstance(cost_details, dict) else ""
    cost = _stated_cost(stated) if stated else None
    if cost is None and kind is NodeType.LLM and model:
        cost = price(
            model, usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_creation_tokens
        )
    return usage, cost or 0.0


_NO_MESSAGES = _Messages([], [], "", "", "")


def _io(kind: NodeType, raw: dict, messages: _Messages, run_root: bool) -> tuple[str, str]:
    if kind is NodeType.LLM and (messages.inputs or messages.outputs):
        return messages.input_json, messages.output_json
    in_keys, out_keys = (ROOT_INPUT_KEYS, ROOT_OUTPUT_KEYS) if run_root else (INPUT_KEYS, OUTPUT_KEYS)
    # An agent or step span may carry GenAI messages (invoke_agent does): their text, else them.
    return (
        _first(raw, *in_keys) or _messages_text(raw.get(semconv.GEN_AI_INPUT_MESSAGES, "")),
        _first(raw, *out_keys) or _messages_text(raw.get(semconv.GEN_AI_OUTPUT_MESSAGES, "")),
    )


def _messages_text(raw: str) -> str:
    """The text parts of GenAI messages, one a line; the raw JSON if none is text."""
    messages = _json(raw)
    if not isinstance(messages, list):
        return raw
    texts = [
        attribute_string(part.get("content", ""))
        for message in messages
        if isinstance(message, dict)
        for part in message.get("parts") or []
        if isinstance(part, dict) and part.get("type") == "text"
    ]
    return "\n".join(texts) if texts else raw


# --- replay events -------------------------------------------------------------------------------


def _new_turn(inputs: list[dict]) -> list[dict]:
    """The input messages a call adds: those after the last assistant message."""
    last = max((i for i, m in enumerate(inputs) if isinstance(m, dict) and m.get("role") == "assistant"), default=-1)
    return inputs[last + 1 :]


def _replay_events(node: Node, raw: dict[str, str], messages: _Messages) -> Iterator[Event]:
    seq = 0
    end = node.ended_at

    def event(kind: EventKind, when, **fields) -> Event:
        nonlocal seq
        seq += 1
        return Event.model_construct(
            tenant=node.tenant,
            run_id=node.run_id,
            conversation_id=node.conversation_id,
            trace_id=node.trace_id,
            span_id=node.span_id,
            seq=seq - 1,
            timestamp=when,
            kind=kind,
            role=fields.pop("role", ""),
            name=fields.pop("name", ""),
            content=fields.pop("content", ""),
            tool_call_id=fields.pop("tool_call_id", ""),
            attributes=fields.pop("attributes", {}),
            ttl_days=node.ttl_days,
            payload_ttl_days=node.payload_ttl_days,
        )

    if node.type is NodeType.LLM:
        turn = _new_turn(messages.inputs)
        # A first call: its system instructions open the transcript.
        if messages.system and len(turn) == len(messages.inputs):
            yield event(EventKind.MESSAGE, node.started_at, role="system", content=_system_text(messages.system))
        for message in turn:
            yield from _message_events(event, message, node.started_at)
        for message in messages.outputs:
            yield from _message_events(event, message, end)
    elif node.type is NodeType.TOOL:
        fields = {"name": node.name}
        name, call_id = _TOOL_NAME(raw, raw, fields), _TOOL_CALL_ID(raw, raw, fields)
        yield event(EventKind.TOOL_CALL, node.started_at, name=name, tool_call_id=call_id, content=node.input)
        if node.status is Status.COMPLETED:
            yield event(EventKind.TOOL_RESULT, end, name=name, tool_call_id=call_id, content=node.output)
    for span_event in node.events:
        attrs = span_event.attributes
        if span_event.name == semconv.EVENT_TRACEHOUSE_CHECKPOINT:
            yield event(
                EventKind.CHECKPOINT,
                span_event.timestamp,
                name=attrs.get(semconv.TRACEHOUSE_CHECKPOINT_ID, ""),
                content=attrs.get(semconv.TRACEHOUSE_CHECKPOINT_STATE, ""),
            )
        elif span_event.name == semconv.EVENT_TRACEHOUSE_APPROVAL:
            yield event(
                EventKind.APPROVAL,
                span_event.timestamp,
                name=span_event.name,
                content=attrs.get(semconv.TRACEHOUSE_EVENT_DATA, ""),
            )
        elif semconv.TRACEHOUSE_EVENT_DATA in attrs:
            yield event(
                EventKind.CUSTOM,
                span_event.timestamp,
                name=span_event.name,
                content=attrs[semconv.TRACEHOUSE_EVENT_DATA],
            )


def _system_text(system: str) -> str:
    parts = _json(system)
    if isinstance(parts, list):
        return "\n".join(attribute_string(p.get("content", "")) for p in parts if isinstance(p, dict))
    return system


def _message_events(event: Callable[..., Event], message: Any, when) -> Iterator[Event]:
    if not isinstance(message, dict):
        return
    role = message.get("role", "")
    texts = []
    for part in message.get("parts") or []:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            texts.append(attribute_string(part.get("content", "")))
        elif kind == "reasoning":
            yield event(EventKind.REASONING, when, role=role, content=attribute_string(part.get("content", "")))
        elif kind == "tool_call":
            yield event(
                EventKind.TOOL_CALL,
                when,
                role=role,
                name=part.get("name", ""),
                tool_call_id=part.get("id", ""),
                content=attribute_string(part.get("arguments", "")),
            )
        elif kind == "tool_call_response":
            yield event(
                EventKind.TOOL_RESULT,
                when,
                role=role,
                tool_call_id=part.get("id", ""),
                content=attribute_string(part.get("response", "")),
            )
    if texts:
        attrs = {"finish_reason": message["finish_reason"]} if message.get("finish_reason") else {}
        yield event(EventKind.MESSAGE, when, role=role, content="\n".join(texts), attributes=attrs)


def normalize_logs(
    resource_logs: Iterable[Any],
    *,
    tenant: str = "",
    retention_for: Callable[[str], Retention] | None = None,
) -> list[LogRecord]:
    """Every log record of an ExportLogsServiceRequest's resource_logs, as canonical rows.

    A record belongs to the run named by its ``tracehouse.run.id`` attribute, else to the run of
    its trace (the span rule), else to none.
    """
    retention_for = retention_for or _default_retention
    records: list[LogRecord] = []
    for rl in resource_logs:
        resource = attributes(rl.resource.attributes)
        for sl in rl.scope_logs:
            for log in sl.log_records:
                attrs = attributes(log.attributes)
                both = {**resource, **attrs}
                record_tenant = tenant or both.get(semconv.TRACEHOUSE_TENANT) or DEFAULT_TENANT
                retention = retention_for(record_tenant)
                trace_id = log.trace_id.hex()
                records.append(
                    LogRecord.model_construct(
                        tenant=record_tenant,
                        timestamp=from_ns(log.time_unix_nano or log.observed_time_unix_nano),
                        trace_id=trace_id,
                        span_id=log.span_id.hex(),
                        trace_flags=log.flags & 0xFF,
                        severity_text=log.severity_text,
                        # OTLP's severities are 1-24; any other number means nothing (UNSPECIFIED)
                        severity_number=log.severity_number if 0 <= log.severity_number <= 24 else 0,
                        service_name=resource.get(semconv.SERVICE_NAME, ""),
                        body=attribute_string(any_value(log.body)),
                        resource_attributes=resource,
                        scope_name=sl.scope.name,
                        scope_version=sl.scope.version,
                        attributes=attrs,
                        run_id=both.get(semconv.TRACEHOUSE_RUN_ID, "") or trace_id,
                        ttl_days=_ttl(both.get(semconv.TRACEHOUSE_TTL_DAYS, ""), retention.ttl_days),
                    )
                )
    return records

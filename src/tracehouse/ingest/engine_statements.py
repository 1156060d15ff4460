"""The statements that normalize a staged batch inside the engine (:mod:`tracehouse.ingest.
engine_input` staged it): the canonical columns of every span, in layers, into the temporary
table :data:`NORMALIZED`, and the inserts of span rows and replay events from it.

The conventions' rules come compiled from :mod:`tracehouse.conventions`
(:mod:`tracehouse.ingest.engine_rules`); the key lists of inputs, outputs and costs are the
Python normalizer's (``normalize.INPUT_KEYS``...). Message shaping (texts, previews, replay
events of GenAI messages) is written here in SQL beside its Python twin in
:mod:`tracehouse.ingest.normalize`; tests/test_normalize_sql.py keeps them equal on every
convention fixture. Values from spans never enter the text: model prices and tenants'
retention are bound parameters (:meth:`Prices.parameters`, :func:`tenant_days`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tracehouse import conventions, semconv
from tracehouse.ingest import normalize as py
from tracehouse.ingest.engine_input import STAGE
from tracehouse.ingest.engine_rules import compile_rule
from tracehouse.ingest.sql_text import array, both, first, get, lookup, quote
from tracehouse.store import rows
from tracehouse.vocabulary import DEFAULT_TENANT, MAX_COST_USD, MAX_TTL_DAYS, PREVIEW_CHARS, EventKind, NodeType, Status

NORMALIZED = "tracehouse_ingest_normalized"  # a session-scoped temporary table


# --- JSON messages (the GenAI shape) --------------------------------------------------------------


def _json_list(expr: str) -> str:
    """``normalize._json`` found a list."""
    return f"(startsWith({expr}, '[') AND isValidJSON({expr}) AND JSONType({expr}) = 'Array')"


def _content(part: str, key: str) -> str:
    """``attribute_string(part.get(key, ""))``; JSON values keep the text they came with."""
    return (
        f"multiIf(JSONType({part}, {quote(key)}) = 'String', JSONExtractString({part}, {quote(key)}), "
        f"JSONType({part}, {quote(key)}) = 'Null', '', JSONExtractRaw({part}, {quote(key)}))"
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
        f"multiIf({typ} = 'reasoning', {quote(EventKind.REASONING)}, "
        f"{typ} = 'tool_call', {quote(EventKind.TOOL_CALL)}, {quote(EventKind.TOOL_RESULT)})",
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
        quote(EventKind.MESSAGE),
        when,
        role,
        content=f"arrayStringConcat({_texts(message)}, '\\n')",
        attrs=f"if({finish} != '', map('finish_reason', {finish}), {_EMPTY_MAP})",
    )
    return f"arrayConcat(arrayMap(p -> {part_event}, {parts}), if(notEmpty({_texts(message)}), [{text_event}], []))"


# --- the statements ------------------------------------------------------------------------------


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


def tenant_days(tenants: Mapping[str, py.Retention]) -> dict[str, Any]:
    """The tenants' retention, bound like the prices (a tenant's name is a client's value)."""
    return {
        "ttl_tenants": list(tenants),
        "ttl_days": [r.ttl_days for r in tenants.values()],
        "payload_ttl_days": [r.payload_ttl_days for r in tenants.values()],
    }


def _layer(columns: Mapping[str, str]) -> str:
    return ",\n        ".join(f"{expr} AS {name}" for name, expr in columns.items())


def normalize_statement(
    retention: py.Retention, tenants: Mapping[str, py.Retention], prices: Prices, where: str
) -> str:
    """The canonical columns of the staged spans, in three layers: the engine's analyzer
    expands an alias at every use, so what many columns read (node type, run root, input) is
    computed in a layer below them and read as a column."""
    operation = get("attrs", semconv.GEN_AI_OPERATION_NAME)
    tenant_ttl = (
        f"transform(Tenant, {{ttl_tenants:Array(String)}}, {{ttl_days:Array(Int64)}}, {int(retention.ttl_days)})"
    )
    input_messages = get("attrs", semconv.GEN_AI_INPUT_MESSAGES)
    output_messages = get("attrs", semconv.GEN_AI_OUTPUT_MESSAGES)
    exception_at = f"indexOf(event_names, {quote(semconv.EXCEPTION_EVENT)})"
    payload = f"(has({array(sorted(semconv.PAYLOAD_ATTRIBUTES))}, k) OR {' OR '.join(f'startsWith(k, {quote(p)})' for p in semconv.PAYLOAD_PREFIXES)})"  # noqa: E501
    layer_1 = {
        "Timestamp": "fromUnixTimestamp64Nano(toInt64(intDiv(start_ns, 1000) * 1000))",
        "TraceId": "lower(hex(trace_id))",
        "NodeType": compile_rule(conventions.NODE_TYPE),
        "ExplicitRun": both(semconv.TRACEHOUSE_RUN_ID),
        "exception": f"if({exception_at} > 0, event_attrs[{exception_at}], {_EMPTY_MAP})",
        "Duration": "if(end_ns > start_ns, end_ns - start_ns, 0)",
        "Status": compile_rule(conventions.STATUS),
        "Tenant": f"coalesce(nullIf(transport_tenant, ''), nullIf({both(semconv.TRACEHOUSE_TENANT)}, ''), {quote(DEFAULT_TENANT)})",  # noqa: E501
        "has_inputs": f"({_json_list(input_messages)} AND JSONLength({input_messages}) > 0)",
        "has_outputs": f"({_json_list(output_messages)} AND JSONLength({output_messages}) > 0)",
        # Read by more than one rule below: computed once here (an alias is expanded at each use).
        "root_input": first("attrs", py.ROOT_INPUT_KEYS),
        "node_input": first("attrs", py.INPUT_KEYS),
        "root_output": first("attrs", py.ROOT_OUTPUT_KEYS),
        "node_output": first("attrs", py.OUTPUT_KEYS),
    }
    layer_2 = {
        "RunId": "if(ExplicitRun != '', ExplicitRun, TraceId)",
        "RunRoot": f"if(ExplicitRun != '', {operation} = {quote(semconv.OP_INVOKE_AGENT)} AND NOT mapContains(attrs, {quote(semconv.TRACEHOUSE_NODE_TYPE)}), parent_span_id = '')",  # noqa: E501
        "llm_messages": f"NodeType = {quote(NodeType.LLM)} AND (has_inputs OR has_outputs)",
        "InputMessages": f"if(llm_messages AND has_inputs, {input_messages}, '')",
        "OutputMessages": f"if(llm_messages AND has_outputs, {output_messages}, '')",
    }
    layer_3 = {
        "Input": f"multiIf(llm_messages, InputMessages, RunRoot AND root_input != '', root_input, "
        f"NOT RunRoot AND node_input != '', node_input, {_messages_text(input_messages)})",
        "Output": f"multiIf(llm_messages, OutputMessages, RunRoot AND root_output != '', root_output, "
        f"NOT RunRoot AND node_output != '', node_output, {_messages_text(output_messages)})",
        "AgentName": compile_rule(conventions.AGENT),
        "TtlDays": f"toUInt16({_ttl(both(semconv.TRACEHOUSE_TTL_DAYS), tenant_ttl)})",
        "InputTokens": compile_rule(conventions.TOKENS["input_tokens"]),
        "OutputTokens": compile_rule(conventions.TOKENS["output_tokens"]),
        "CacheReadTokens": compile_rule(conventions.TOKENS["cache_read_tokens"]),
        "CacheCreationTokens": compile_rule(conventions.TOKENS["cache_creation_tokens"]),
        "ReasoningTokens": compile_rule(conventions.TOKENS["reasoning_tokens"]),
        "Model": compile_rule(conventions.MODEL),
        "StatedCost": f"toFloat64OrNull({first('attrs', py.COST_KEYS)})",
    }
    cached = "least(CacheReadTokens, InputTokens)"
    priced = (
        f"(InputTokens - {cached}) * {prices.cost('Model', 0)} + OutputTokens * {prices.cost('Model', 1)} + "
        f"{cached} * {prices.cost('Model', 2)} + CacheCreationTokens * {prices.cost('Model', 3)}"
    )
    layer_4 = {
        "record": "record",
        "Timestamp": "Timestamp",
        "TraceId": "TraceId",
        "SpanId": "lower(hex(span_id))",
        "ParentSpanId": "lower(hex(parent_span_id))",
        "TraceState": "trace_state",
        "SpanName": "name",
        "SpanKind": lookup("toInt64(kind)", py.SPAN_KINDS, "Unspecified"),
        "ServiceName": f"res[{quote(semconv.SERVICE_NAME)}]",
        "ResourceAttributes": "res",
        "ScopeName": "scope_name",
        "ScopeVersion": "scope_version",
        "SpanAttributes": f"mapFilter((k, v) -> NOT {payload}, attrs)",
        "Duration": "Duration",
        "StatusCode": lookup("toInt64(status_code)", py.STATUS_CODES, "Unset"),
        "StatusMessage": f"if(status_message != '', status_message, exception[{quote(semconv.EXCEPTION_MESSAGE)}])",
        "EventTimestamps": "arrayMap(t -> fromUnixTimestamp64Nano(toInt64(intDiv(t, 1000) * 1000)), event_ns)",
        "EventNames": "event_names",
        "EventAttributes": "event_attrs",
        "LinkTraceIds": "link_trace_ids",
        "LinkSpanIds": "link_span_ids",
        "LinkStates": "link_states",
        "LinkAttributes": "link_attrs",
        "Tenant": "Tenant",
        "RunId": "RunId",
        "ParentRunId": f"if(RunRoot, {both(semconv.TRACEHOUSE_PARENT_RUN_ID)}, '')",
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
        f"NodeType = {quote(NodeType.LLM)} AND Model != '', {priced}, 0.)",
        "ErrorType": f"coalesce(nullIf({get('attrs', semconv.ERROR_TYPE)}, ''), nullIf(exception[{quote(semconv.EXCEPTION_TYPE)}], ''), "  # noqa: E501
        f"if(Status = {quote(Status.FAILED)}, 'Error', ''))",
        "LlmMessages": "llm_messages",  # Input and Output are then the messages JSON
        "SystemInstructions": f"if(NodeType = {quote(NodeType.LLM)}, {get('attrs', semconv.GEN_AI_SYSTEM_INSTRUCTIONS)}, '')",  # noqa: E501
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
        {_layer(layer_4)}
FROM (
    SELECT *,
        {_layer(layer_3)}
    FROM (
        SELECT *,
        {_layer(layer_2)}
        FROM (
            SELECT *,
        {_layer(layer_1)}
            FROM {STAGE}
            WHERE {where}
        )
    )
)
"""


def events_select() -> str:
    """``normalize._replay_events`` for every normalized span: the rows of the events table
    (in ``rows.EVENT_COLUMNS`` order)."""
    inputs = "if(LlmMessages AND Input != '', JSONExtractArrayRaw(Input), [])"
    outputs = "if(LlmMessages AND Output != '', JSONExtractArrayRaw(Output), [])"
    last_assistant = f"arrayLastIndex(m -> JSONExtractString(m, 'role') = 'assistant', {inputs})"
    system = _event(quote(EventKind.MESSAGE), "Timestamp", "'system'", content=_system_text("SystemInstructions"))
    llm = (
        f"arrayConcat(if(SystemInstructions != '' AND {last_assistant} = 0, [{system}], []), "
        f"arrayFlatten(arrayMap(m -> {_message_events('m', 'Timestamp')}, "
        f"arraySlice({inputs}, {last_assistant} + 1))), "
        f"arrayFlatten(arrayMap(m -> {_message_events('m', 'EndedAt')}, {outputs})))"
    )
    tool = (
        f"arrayConcat([{_event(quote(EventKind.TOOL_CALL), 'Timestamp', name='ToolName', content='Input', call='ToolCallId')}], "  # noqa: E501
        f"if(Status = {quote(Status.COMPLETED)}, [{_event(quote(EventKind.TOOL_RESULT), 'EndedAt', name='ToolName', content='Output', call='ToolCallId')}], []))"  # noqa: E501
    )
    data = quote(semconv.TRACEHOUSE_EVENT_DATA)
    from_span_events = (
        "arrayFilter(e -> e.1 != '', arrayMap((n, t, a) -> multiIf("
        f"n = {quote(semconv.EVENT_TRACEHOUSE_CHECKPOINT)}, {_event(quote(EventKind.CHECKPOINT), 't', name=get('a', semconv.TRACEHOUSE_CHECKPOINT_ID), content=get('a', semconv.TRACEHOUSE_CHECKPOINT_STATE))}, "  # noqa: E501
        f"n = {quote(semconv.EVENT_TRACEHOUSE_APPROVAL)}, {_event(quote(EventKind.APPROVAL), 't', name='n', content=f'a[{data}]')}, "  # noqa: E501
        f"mapContains(a, {data}), {_event(quote(EventKind.CUSTOM), 't', name='n', content=f'a[{data}]')}, "
        f"{_event(_NONE, 't')}), EventNames, EventTimestamps, EventAttributes))"
    )
    events = (
        f"arrayConcat(multiIf(NodeType = {quote(NodeType.LLM)}, {llm}, NodeType = {quote(NodeType.TOOL)}, {tool}, []), "
        f"{from_span_events})"
    )
    return f"""
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


def spans_select() -> str:
    """The rows of the spans table (in ``rows.SPAN_COLUMNS`` order) of the normalized spans."""
    return f"SELECT {', '.join(_SPAN_SELECT.get(c, c) for c in rows.SPAN_COLUMNS)} FROM {NORMALIZED}"

"""semconv.py against the conventions' own packages, and its monopoly on attribute strings."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest
from openinference.semconv import trace as oi
from opentelemetry.semconv._incubating.attributes import (
    enduser_attributes,
    gen_ai_attributes,
    session_attributes,
    user_attributes,
)
from opentelemetry.semconv.attributes import error_attributes, exception_attributes, service_attributes
from opentelemetry.semconv_ai import SpanAttributes as TL
from opentelemetry.semconv_ai import TraceloopSpanKindValues

from tracehouse import semconv

SRC = Path(semconv.__file__).parent


def _ours(prefix: str) -> dict[str, str]:
    return {name: value for name, value in vars(semconv).items() if name.startswith(prefix) and isinstance(value, str)}


def test_gen_ai_names_match_upstream_where_it_defines_them():
    checked = 0
    for name, value in _ours("GEN_AI_").items():
        upstream = getattr(gen_ai_attributes, name, None)
        if upstream is not None:
            assert value == upstream, name
            checked += 1
    # Not vacuous: the core of the convention is defined upstream under the same names.
    assert checked >= 45
    for core in ("GEN_AI_OPERATION_NAME", "GEN_AI_PROVIDER_NAME", "GEN_AI_AGENT_NAME", "GEN_AI_USAGE_INPUT_TOKENS",
                 "GEN_AI_USAGE_OUTPUT_TOKENS", "GEN_AI_INPUT_MESSAGES", "GEN_AI_OUTPUT_MESSAGES",
                 "GEN_AI_SYSTEM_INSTRUCTIONS", "GEN_AI_CONVERSATION_ID", "GEN_AI_TOOL_CALL_ID",
                 "GEN_AI_SYSTEM", "GEN_AI_USAGE_PROMPT_TOKENS", "GEN_AI_USAGE_COMPLETION_TOKENS"):  # fmt: skip
        assert getattr(semconv, core) == getattr(gen_ai_attributes, core)


def test_operation_names_match_upstream_values():
    upstream = {member.value for member in gen_ai_attributes.GenAiOperationNameValues}
    ours = {value for name, value in vars(semconv).items() if name.startswith("OP_")}
    assert ours <= upstream
    assert ours >= semconv.LLM_OPERATIONS


@pytest.mark.parametrize(
    ("ours", "module", "name"),
    [
        ("SERVICE_NAME", service_attributes, "SERVICE_NAME"),
        ("ERROR_TYPE", error_attributes, "ERROR_TYPE"),
        ("EXCEPTION_TYPE", exception_attributes, "EXCEPTION_TYPE"),
        ("EXCEPTION_MESSAGE", exception_attributes, "EXCEPTION_MESSAGE"),
        ("EXCEPTION_STACKTRACE", exception_attributes, "EXCEPTION_STACKTRACE"),
        ("SESSION_ID", session_attributes, "SESSION_ID"),
        ("USER_ID", user_attributes, "USER_ID"),
        ("ENDUSER_ID", enduser_attributes, "ENDUSER_ID"),
    ],
)
def test_general_names_match_upstream(ours, module, name):
    assert getattr(semconv, ours) == getattr(module, name)


OPENINFERENCE = {
    "OPENINFERENCE_SPAN_KIND": oi.SpanAttributes.OPENINFERENCE_SPAN_KIND,
    "OI_INPUT_VALUE": oi.SpanAttributes.INPUT_VALUE,
    "OI_INPUT_MIME_TYPE": oi.SpanAttributes.INPUT_MIME_TYPE,
    "OI_OUTPUT_VALUE": oi.SpanAttributes.OUTPUT_VALUE,
    "OI_OUTPUT_MIME_TYPE": oi.SpanAttributes.OUTPUT_MIME_TYPE,
    "OI_LLM_MODEL_NAME": oi.SpanAttributes.LLM_MODEL_NAME,
    "OI_LLM_PROVIDER": oi.SpanAttributes.LLM_PROVIDER,
    "OI_LLM_SYSTEM": oi.SpanAttributes.LLM_SYSTEM,
    "OI_LLM_INVOCATION_PARAMETERS": oi.SpanAttributes.LLM_INVOCATION_PARAMETERS,
    "OI_LLM_INPUT_MESSAGES": oi.SpanAttributes.LLM_INPUT_MESSAGES,
    "OI_LLM_OUTPUT_MESSAGES": oi.SpanAttributes.LLM_OUTPUT_MESSAGES,
    "OI_LLM_TOKEN_COUNT_PROMPT": oi.SpanAttributes.LLM_TOKEN_COUNT_PROMPT,
    "OI_LLM_TOKEN_COUNT_COMPLETION": oi.SpanAttributes.LLM_TOKEN_COUNT_COMPLETION,
    "OI_LLM_TOKEN_COUNT_TOTAL": oi.SpanAttributes.LLM_TOKEN_COUNT_TOTAL,
    "OI_LLM_TOKEN_COUNT_CACHE_READ": oi.SpanAttributes.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ,
    "OI_LLM_TOKEN_COUNT_CACHE_WRITE": oi.SpanAttributes.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_WRITE,
    "OI_LLM_TOKEN_COUNT_REASONING": oi.SpanAttributes.LLM_TOKEN_COUNT_COMPLETION_DETAILS_REASONING,
    "OI_LLM_COST_TOTAL": oi.SpanAttributes.LLM_COST_TOTAL,
    "OI_MESSAGE_ROLE": oi.MessageAttributes.MESSAGE_ROLE,
    "OI_MESSAGE_CONTENT": oi.MessageAttributes.MESSAGE_CONTENT,
    "OI_MESSAGE_NAME": oi.MessageAttributes.MESSAGE_NAME,
    "OI_MESSAGE_TOOL_CALLS": oi.MessageAttributes.MESSAGE_TOOL_CALLS,
    "OI_MESSAGE_TOOL_CALL_ID": oi.MessageAttributes.MESSAGE_TOOL_CALL_ID,
    "OI_TOOL_NAME": oi.SpanAttributes.TOOL_NAME,
    "OI_TOOL_PARAMETERS": oi.SpanAttributes.TOOL_PARAMETERS,
    "OI_TOOL_CALL_ID": oi.ToolCallAttributes.TOOL_CALL_ID,
    "OI_TOOL_CALL_FUNCTION_NAME": oi.ToolCallAttributes.TOOL_CALL_FUNCTION_NAME,
    "OI_TOOL_CALL_FUNCTION_ARGUMENTS": oi.ToolCallAttributes.TOOL_CALL_FUNCTION_ARGUMENTS_JSON,
    "OI_AGENT_NAME": oi.SpanAttributes.AGENT_NAME,
    "OI_GRAPH_NODE_ID": oi.SpanAttributes.GRAPH_NODE_ID,
    "OI_GRAPH_NODE_NAME": oi.SpanAttributes.GRAPH_NODE_NAME,
    "OI_GRAPH_NODE_PARENT_ID": oi.SpanAttributes.GRAPH_NODE_PARENT_ID,
    "OI_METADATA": oi.SpanAttributes.METADATA,
    "OI_TAG_TAGS": oi.SpanAttributes.TAG_TAGS,
    "OI_RETRIEVAL_DOCUMENTS": oi.SpanAttributes.RETRIEVAL_DOCUMENTS,
    "SESSION_ID": oi.SpanAttributes.SESSION_ID,
    "USER_ID": oi.SpanAttributes.USER_ID,
}


def test_openinference_names_match_its_package():
    for ours, upstream in OPENINFERENCE.items():
        assert getattr(semconv, ours) == upstream, ours
    kinds = {k.value for k in oi.OpenInferenceSpanKindValues}
    assert {value for name, value in vars(semconv).items() if name.startswith("OI_KIND_")} <= kinds


TRACELOOP = {
    "TRACELOOP_SPAN_KIND": TL.TRACELOOP_SPAN_KIND,
    "TRACELOOP_WORKFLOW_NAME": TL.TRACELOOP_WORKFLOW_NAME,
    "TRACELOOP_ENTITY_NAME": TL.TRACELOOP_ENTITY_NAME,
    "TRACELOOP_ENTITY_PATH": TL.TRACELOOP_ENTITY_PATH,
    "TRACELOOP_ENTITY_INPUT": TL.TRACELOOP_ENTITY_INPUT,
    "TRACELOOP_ENTITY_OUTPUT": TL.TRACELOOP_ENTITY_OUTPUT,
    "TRACELOOP_ASSOCIATION_PROPERTIES": TL.TRACELOOP_ASSOCIATION_PROPERTIES,
    "LLM_REQUEST_TYPE": TL.LLM_REQUEST_TYPE,
    "LLM_USAGE_TOTAL_TOKENS": TL.LLM_USAGE_TOTAL_TOKENS,
    "GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS_TRACELOOP": TL.LLM_USAGE_CACHE_READ_INPUT_TOKENS,
    "GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS_TRACELOOP": TL.LLM_USAGE_CACHE_CREATION_INPUT_TOKENS,
    "GEN_AI_USAGE_REASONING_TOKENS_TRACELOOP": TL.GEN_AI_USAGE_REASONING_TOKENS,
    "GEN_AI_PROMPT": TL.LLM_PROMPTS,
    "GEN_AI_COMPLETION": TL.LLM_COMPLETIONS,
}


def test_traceloop_names_match_its_package():
    for ours, upstream in TRACELOOP.items():
        assert getattr(semconv, ours) == upstream, ours
    kinds = {k.value for k in TraceloopSpanKindValues}
    assert {value for name, value in vars(semconv).items() if name.startswith("TRACELOOP_KIND_")} <= kinds


def test_tracehouse_names_are_only_where_gen_ai_has_none():
    ours = {value for value in vars(semconv).values() if isinstance(value, str) and value.startswith("tracehouse.")}
    upstream_values = {v for v in vars(gen_ai_attributes).values() if isinstance(v, str)}
    suffixes = {name.split(".", 1)[1] for name in ours}
    # No tracehouse.* name duplicates a GenAI attribute under our prefix.
    assert not {f"gen_ai.{suffix}" for suffix in suffixes} & upstream_values
    assert len(ours) == len(set(ours))


def test_payload_attributes_classification():
    assert semconv.is_payload_attribute(semconv.GEN_AI_INPUT_MESSAGES)
    assert semconv.is_payload_attribute("gen_ai.prompt.0.content")
    assert semconv.is_payload_attribute("llm.input_messages.3.message.content")
    assert not semconv.is_payload_attribute(semconv.GEN_AI_REQUEST_MODEL)
    assert not semconv.is_payload_attribute(semconv.GEN_AI_USAGE_INPUT_TOKENS)


_ATTRIBUTE_LIKE = re.compile(
    r"^(gen_ai|llm|openinference|traceloop|langfuse|tracehouse|session|user|enduser|error|exception|service|"
    r"input|output|message|tool|tool_call|agent|graph|embedding|retrieval)\.[a-z0-9_]+(\.[a-z0-9_]+)*$"
)


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def test_no_attribute_string_is_spelled_outside_semconv():
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "semconv.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            literal = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
            if _ATTRIBUTE_LIKE.match(literal) and not _is_module(literal):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.value!r}")
    assert not offenders, "attribute names belong in semconv.py:\n" + "\n".join(offenders)


def test_the_monopoly_check_catches_an_offender():
    # The check above must be able to fail: the same pattern flags a literal attribute name.
    assert _ATTRIBUTE_LIKE.match("gen_ai.request.model")
    assert _ATTRIBUTE_LIKE.match("tracehouse.run.id")
    assert not _is_module("gen_ai.request.model")
    assert _is_module("tracehouse.store")

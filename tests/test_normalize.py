"""Normalization of each convention's spans into canonical nodes and replay events."""

from __future__ import annotations

import json

import pytest
from openinference.semconv.trace import MessageAttributes, OpenInferenceSpanKindValues, SpanAttributes
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as GA
from opentelemetry.semconv_ai import SpanAttributes as TL
from opentelemetry.trace import Status, StatusCode
from otel_helpers import Recorder

from tracehouse import pricing, semconv
from tracehouse.ingest.normalize import Retention, normalize_spans
from tracehouse.model import EventKind, NodeType
from tracehouse.model import Status as RunStatus


def _normalize(recorder: Recorder, **kwargs):
    nodes, events = normalize_spans(recorder.request().resource_spans, **kwargs)
    return {n.name: n for n in nodes}, events


def _msgs(*pairs):
    return json.dumps([{"role": r, "parts": [{"type": "text", "content": c}]} for r, c in pairs])


def test_gen_ai_current_conventions():
    rec = Recorder()
    with rec.span(
        "invoke_agent planner",
        **{
            GA.GEN_AI_OPERATION_NAME: "invoke_agent",
            GA.GEN_AI_AGENT_NAME: "planner",
            GA.GEN_AI_CONVERSATION_ID: "conv-1",
            "user.id": "u-7",
        },
    ):
        with rec.span(
            "chat gpt-4o",
            **{
                GA.GEN_AI_OPERATION_NAME: "chat",
                GA.GEN_AI_REQUEST_MODEL: "gpt-4o",
                GA.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
                GA.GEN_AI_PROVIDER_NAME: "openai",
                GA.GEN_AI_USAGE_INPUT_TOKENS: 1000,
                GA.GEN_AI_USAGE_OUTPUT_TOKENS: 200,
                GA.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 400,
                GA.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 50,
                GA.GEN_AI_SYSTEM_INSTRUCTIONS: json.dumps([{"type": "text", "content": "Be brief."}]),
                GA.GEN_AI_INPUT_MESSAGES: _msgs(("user", "Plan a trip")),
                GA.GEN_AI_OUTPUT_MESSAGES: json.dumps(
                    [
                        {
                            "role": "assistant",
                            "finish_reason": "tool_call",
                            "parts": [
                                {"type": "reasoning", "content": "need flights"},
                                {"type": "text", "content": "Let me search."},
                                {"type": "tool_call", "id": "call_1", "name": "search", "arguments": {"q": "flights"}},
                            ],
                        }
                    ]
                ),
            },
        ):
            pass
        with rec.span(
            "execute_tool search",
            **{
                GA.GEN_AI_OPERATION_NAME: "execute_tool",
                GA.GEN_AI_TOOL_NAME: "search",
                GA.GEN_AI_TOOL_CALL_ID: "call_1",
                GA.GEN_AI_TOOL_CALL_ARGUMENTS: '{"q": "flights"}',
                GA.GEN_AI_TOOL_CALL_RESULT: '{"best": 620}',
            },
        ):
            pass
    nodes, events = _normalize(rec)
    root, llm, tool = nodes["invoke_agent planner"], nodes["chat gpt-4o"], nodes["execute_tool search"]
    assert root.run_root and root.type is NodeType.AGENT and root.agent_name == "planner"
    assert root.run_id == llm.run_id == tool.run_id == root.trace_id  # a foreign run: one trace, one run
    assert (root.conversation_id, root.user_id, root.service_name) == ("conv-1", "u-7", "test-agent")
    assert llm.type is NodeType.LLM and llm.model == "gpt-4o-2024-08-06" and llm.provider == "openai"
    assert (
        llm.usage.input_tokens,
        llm.usage.output_tokens,
        llm.usage.cache_read_tokens,
        llm.usage.reasoning_tokens,
    ) == (1000, 200, 400, 50)
    assert llm.cost_usd == pytest.approx(pricing.cost_usd("gpt-4o", 1000, 200, 400))
    assert llm.cost_usd == pytest.approx((600 * 2.5 + 400 * 1.25 + 200 * 10) / 1e6)
    assert json.loads(llm.input)[0]["parts"][0]["content"] == "Plan a trip"
    assert GA.GEN_AI_INPUT_MESSAGES in llm.payload_attributes and GA.GEN_AI_INPUT_MESSAGES not in llm.attributes
    assert llm.attributes[GA.GEN_AI_REQUEST_MODEL] == "gpt-4o"
    assert (tool.type, tool.input, tool.output) == (NodeType.TOOL, '{"q": "flights"}', '{"best": 620}')
    kinds = [(e.kind, e.role, e.content or e.name) for e in events if e.span_id == llm.span_id]
    assert kinds == [
        (EventKind.MESSAGE, "system", "Be brief."),
        (EventKind.MESSAGE, "user", "Plan a trip"),
        (EventKind.REASONING, "assistant", "need flights"),
        (EventKind.TOOL_CALL, "assistant", '{"q":"flights"}'),
        (EventKind.MESSAGE, "assistant", "Let me search."),
    ]
    assert [e.seq for e in events if e.span_id == llm.span_id] == [0, 1, 2, 3, 4]
    tool_events = [(e.kind, e.tool_call_id, e.content) for e in events if e.span_id == tool.span_id]
    assert tool_events == [
        (EventKind.TOOL_CALL, "call_1", '{"q": "flights"}'),
        (EventKind.TOOL_RESULT, "call_1", '{"best": 620}'),
    ]


def test_a_second_call_adds_only_its_new_turn_to_the_replay():
    rec = Recorder()
    history = [("user", "hi"), ("assistant", "hello"), ("user", "plan a trip")]
    with rec.span(
        "chat m",
        **{
            GA.GEN_AI_OPERATION_NAME: "chat",
            GA.GEN_AI_REQUEST_MODEL: "m",
            GA.GEN_AI_SYSTEM_INSTRUCTIONS: "sys",
            GA.GEN_AI_INPUT_MESSAGES: _msgs(*history),
            GA.GEN_AI_OUTPUT_MESSAGES: _msgs(("assistant", "where to?")),
        },
    ):
        pass
    _, events = _normalize(rec)
    assert [(e.role, e.content) for e in events] == [("user", "plan a trip"), ("assistant", "where to?")]


def test_gen_ai_before_1_37_names_and_message_events():
    rec = Recorder()
    with rec.span(
        "chat claude",
        **{
            GA.GEN_AI_SYSTEM: "anthropic",
            GA.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-20250514",
            GA.GEN_AI_USAGE_PROMPT_TOKENS: 10,
            GA.GEN_AI_USAGE_COMPLETION_TOKENS: 4,
        },
    ) as span:
        span.add_event("gen_ai.system.message", {"content": "You are terse."})
        span.add_event("gen_ai.user.message", {"content": "Hi"})
        span.add_event("gen_ai.choice", {"index": 0, "finish_reason": "stop", "message": json.dumps({"content": "Yo"})})
    nodes, events = _normalize(rec)
    llm = nodes["chat claude"]
    assert llm.type is NodeType.LLM and llm.operation == "chat" and llm.provider == "anthropic"
    assert (llm.usage.input_tokens, llm.usage.output_tokens) == (10, 4)
    assert llm.cost_usd == pytest.approx((10 * 3 + 4 * 15) / 1e6)  # dated snapshot priced as its model
    assert [(e.role, e.content) for e in events] == [("system", "You are terse."), ("user", "Hi"), ("assistant", "Yo")]
    assert events[-1].attributes == {"finish_reason": "stop"}


def test_openinference_spans():
    rec = Recorder()
    kind = SpanAttributes.OPENINFERENCE_SPAN_KIND
    with rec.span(
        "agent",
        **{
            kind: OpenInferenceSpanKindValues.AGENT.value,
            SpanAttributes.AGENT_NAME: "oi-agent",
            SpanAttributes.INPUT_VALUE: "find docs",
            SpanAttributes.OUTPUT_VALUE: "found 3",
            SpanAttributes.SESSION_ID: "sess-9",
        },
    ):
        prefix_in, prefix_out = SpanAttributes.LLM_INPUT_MESSAGES, SpanAttributes.LLM_OUTPUT_MESSAGES
        with rec.span(
            "ChatOpenAI",
            **{
                kind: OpenInferenceSpanKindValues.LLM.value,
                SpanAttributes.LLM_MODEL_NAME: "gpt-4o-mini",
                SpanAttributes.LLM_PROVIDER: "openai",
                SpanAttributes.LLM_TOKEN_COUNT_PROMPT: 30,
                SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: 7,
                SpanAttributes.LLM_COST_TOTAL: 0.5,
                f"{prefix_in}.0.{MessageAttributes.MESSAGE_ROLE}": "user",
                f"{prefix_in}.0.{MessageAttributes.MESSAGE_CONTENT}": "find docs",
                f"{prefix_out}.0.{MessageAttributes.MESSAGE_ROLE}": "assistant",
                f"{prefix_out}.0.{MessageAttributes.MESSAGE_CONTENT}": "calling retriever",
                f"{prefix_out}.0.{MessageAttributes.MESSAGE_TOOL_CALLS}.0.tool_call.id": "c9",
                f"{prefix_out}.0.{MessageAttributes.MESSAGE_TOOL_CALLS}.0.tool_call.function.name": "retrieve",
                f"{prefix_out}.0.{MessageAttributes.MESSAGE_TOOL_CALLS}.0.tool_call.function.arguments": '{"k": 3}',
            },
        ):
            pass
        with rec.span(
            "retrieve",
            **{
                kind: OpenInferenceSpanKindValues.TOOL.value,
                SpanAttributes.TOOL_NAME: "retrieve",
                SpanAttributes.INPUT_VALUE: '{"k": 3}',
                SpanAttributes.OUTPUT_VALUE: "3 docs",
            },
        ):
            pass
    nodes, events = _normalize(rec)
    agent, llm, tool = nodes["agent"], nodes["ChatOpenAI"], nodes["retrieve"]
    assert agent.run_root and agent.type is NodeType.AGENT and agent.agent_name == "oi-agent"
    assert (agent.input, agent.output, agent.conversation_id) == ("find docs", "found 3", "sess-9")
    assert llm.type is NodeType.LLM and llm.operation == "chat" and llm.model == "gpt-4o-mini"
    assert (llm.usage.input_tokens, llm.usage.output_tokens, llm.cost_usd) == (30, 7, 0.5)  # the span's own cost
    output = json.loads(llm.output)[0]
    assert output["parts"][0] == {"type": "text", "content": "calling retriever"}
    assert output["parts"][1] == {"type": "tool_call", "id": "c9", "name": "retrieve", "arguments": {"k": 3}}
    assert all(k.startswith(prefix_in) or k.startswith(prefix_out) for k in llm.payload_attributes)
    assert (tool.type, tool.input, tool.output) == (NodeType.TOOL, '{"k": 3}', "3 docs")
    llm_events = [(e.kind, e.content) for e in events if e.span_id == llm.span_id]
    assert llm_events == [
        (EventKind.MESSAGE, "find docs"),
        (EventKind.TOOL_CALL, '{"k":3}'),
        (EventKind.MESSAGE, "calling retriever"),
    ]


def test_traceloop_spans():
    rec = Recorder()
    with rec.span(
        "trip.workflow",
        **{
            TL.TRACELOOP_SPAN_KIND: "workflow",
            TL.TRACELOOP_WORKFLOW_NAME: "trip",
            TL.TRACELOOP_ENTITY_INPUT: '{"city": "Rome"}',
        },
    ):
        with rec.span("planner.agent", **{TL.TRACELOOP_SPAN_KIND: "agent", TL.TRACELOOP_ENTITY_NAME: "planner"}):
            with rec.span(
                "openai.chat",
                **{
                    TL.LLM_REQUEST_TYPE: "chat",
                    TL.LLM_SYSTEM: "openai",
                    TL.LLM_REQUEST_MODEL: "gpt-4o-mini",
                    TL.LLM_USAGE_PROMPT_TOKENS: 100,
                    TL.LLM_USAGE_COMPLETION_TOKENS: 20,
                    TL.LLM_USAGE_CACHE_READ_INPUT_TOKENS: 50,
                    f"{TL.LLM_PROMPTS}.0.role": "user",
                    f"{TL.LLM_PROMPTS}.0.content": "Rome?",
                    f"{TL.LLM_COMPLETIONS}.0.role": "assistant",
                    f"{TL.LLM_COMPLETIONS}.0.content": "Go!",
                },
            ):
                pass
            with rec.span("search.tool", **{TL.TRACELOOP_SPAN_KIND: "tool", TL.TRACELOOP_ENTITY_NAME: "search"}):
                pass
    nodes, events = _normalize(rec)
    assert nodes["trip.workflow"].run_root and nodes["trip.workflow"].agent_name == "trip"
    assert nodes["trip.workflow"].input == '{"city": "Rome"}'
    assert nodes["planner.agent"].type is NodeType.AGENT and nodes["planner.agent"].agent_name == "planner"
    llm = nodes["openai.chat"]
    assert llm.type is NodeType.LLM and llm.provider == "openai" and llm.usage.cache_read_tokens == 50
    assert llm.cost_usd == pytest.approx((50 * 0.15 + 50 * 0.075 + 20 * 0.6) / 1e6)
    assert nodes["search.tool"].type is NodeType.TOOL
    assert [(e.role, e.content) for e in events if e.span_id == llm.span_id] == [
        ("user", "Rome?"),
        ("assistant", "Go!"),
    ]


def test_langfuse_spans():
    rec = Recorder()
    with rec.span(
        "support",
        **{
            semconv.LANGFUSE_TRACE_NAME: "support-bot",
            semconv.LANGFUSE_SESSION_ID: "s-1",
            semconv.LANGFUSE_USER_ID: "u-1",
            semconv.LANGFUSE_OBSERVATION_TYPE: "agent",
            semconv.LANGFUSE_TRACE_INPUT: "refund?",
        },
    ):
        with rec.span(
            "llm",
            **{
                semconv.LANGFUSE_OBSERVATION_TYPE: "generation",
                semconv.LANGFUSE_OBSERVATION_MODEL: "claude-3-5-haiku-20241022",
                semconv.LANGFUSE_OBSERVATION_USAGE_DETAILS: '{"input": 40, "output": 9}',
                semconv.LANGFUSE_OBSERVATION_COST_DETAILS: '{"total": 0.002}',
                semconv.LANGFUSE_OBSERVATION_LEVEL: "ERROR",
            },
        ):
            pass
    nodes, _ = _normalize(rec)
    root, llm = nodes["support"], nodes["llm"]
    assert root.run_root and root.agent_name == "support" and root.type is NodeType.AGENT
    assert (root.conversation_id, root.user_id, root.input) == ("s-1", "u-1", "refund?")
    assert llm.type is NodeType.LLM and llm.model == "claude-3-5-haiku-20241022"
    assert (llm.usage.input_tokens, llm.usage.output_tokens, llm.cost_usd) == (40, 9, 0.002)
    assert llm.status is RunStatus.FAILED


def test_plain_spans_errors_and_unknown_attributes_are_kept():
    rec = Recorder()
    with rec.span("GET /weather", **{"http.method": "GET", "custom.flag": True, "tags": ["a", "b"]}) as span:
        try:
            raise TimeoutError("weather API timed out")
        except TimeoutError as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR))
    nodes, events = _normalize(rec)
    node = nodes["GET /weather"]
    assert node.type is NodeType.OTHER and node.run_root and node.status is RunStatus.FAILED
    assert node.otel_status_code == "Error" and node.error_type == "TimeoutError"
    assert node.status_message == "weather API timed out"
    assert node.attributes == {"http.method": "GET", "custom.flag": "true", "tags": '["a","b"]'}
    assert node.events[0].name == "exception" and "Traceback" in node.events[0].attributes["exception.stacktrace"]
    assert node.span_kind == "Internal" and node.scope_name == "tests.conventions" and node.scope_version == "1.0"
    assert events == []


def test_tracehouse_runs_with_a_sub_agent_run_and_retention():
    rec = Recorder(**{semconv.TRACEHOUSE_TTL_DAYS: "7"})
    run = {
        semconv.TRACEHOUSE_RUN_ID: "run-A",
        GA.GEN_AI_OPERATION_NAME: "invoke_agent",
        GA.GEN_AI_AGENT_NAME: "boss",
        semconv.TRACEHOUSE_RUN_INPUT: "go",
    }
    with rec.span("invoke_agent boss", **run) as span:
        span.add_event(
            semconv.EVENT_TRACEHOUSE_CHECKPOINT,
            {semconv.TRACEHOUSE_CHECKPOINT_ID: "cp1", semconv.TRACEHOUSE_CHECKPOINT_STATE: '{"step": 2}'},
        )
        span.add_event("iteration_started", {semconv.TRACEHOUSE_EVENT_DATA: '{"i": 1}'})
        with rec.span(
            "invoke_agent helper",
            **{
                semconv.TRACEHOUSE_RUN_ID: "run-B",
                semconv.TRACEHOUSE_PARENT_RUN_ID: "run-A",
                GA.GEN_AI_OPERATION_NAME: "invoke_agent",
            },
        ):
            with rec.span(
                "step",
                **{
                    semconv.TRACEHOUSE_RUN_ID: "run-B",
                    semconv.TRACEHOUSE_NODE_TYPE: "chain",
                    semconv.TRACEHOUSE_STATUS: "cancelled",
                },
            ):
                pass
    nodes, events = _normalize(rec, retention_for=lambda tenant: Retention(ttl_days=30, payload_ttl_days=3))
    boss, helper, step = nodes["invoke_agent boss"], nodes["invoke_agent helper"], nodes["step"]
    assert (boss.run_id, boss.run_root, boss.parent_run_id, boss.input) == ("run-A", True, "", "go")
    assert (helper.run_id, helper.run_root, helper.parent_run_id, helper.agent_name) == (
        "run-B",
        True,
        "run-A",
        "helper",
    )
    assert (step.run_id, step.run_root, step.type, step.status) == ("run-B", False, NodeType.STEP, RunStatus.CANCELLED)
    assert {(n.ttl_days, n.payload_ttl_days) for n in nodes.values()} == {(7, 3)}  # resource ttl wins over default
    assert [(e.kind, e.name, e.content) for e in events] == [
        (EventKind.CHECKPOINT, "cp1", '{"step": 2}'),
        (EventKind.CUSTOM, "iteration_started", '{"i": 1}'),
    ]


def test_a_run_has_one_root_whatever_agent_spans_it_holds():
    """In a run with an id of its own, the root is the invoke_agent span that starts it; an agent
    node (a typed node, or another framework's agent span the instrumentation marked) is not."""
    rec = Recorder()
    in_run = {semconv.TRACEHOUSE_RUN_ID: "run-C"}
    with rec.span("invoke_agent desk", **in_run, **{GA.GEN_AI_OPERATION_NAME: "invoke_agent"}):
        with rec.span("planner", **in_run, **{semconv.TRACEHOUSE_NODE_TYPE: "agent"}):
            pass
        marked = {GA.GEN_AI_OPERATION_NAME: "invoke_agent", semconv.TRACEHOUSE_NODE_TYPE: "agent"}
        with rec.span("invoke_agent pydantic-helper", **in_run, **marked):
            pass
    nodes, _ = _normalize(rec)
    assert {name: (n.run_root, n.type) for name, n in nodes.items()} == {
        "invoke_agent desk": (True, NodeType.AGENT),
        "planner": (False, NodeType.AGENT),
        "invoke_agent pydantic-helper": (False, NodeType.AGENT),
    }


def test_tenant_and_default_retention_come_from_the_caller():
    rec = Recorder()
    with rec.span("x", **{semconv.TRACEHOUSE_TTL_DAYS: "99999"}):
        pass
    with rec.span("y"):
        pass
    nodes, _ = _normalize(rec, tenant="acme", retention_for=lambda tenant: Retention(ttl_days=14, payload_ttl_days=30))
    assert nodes["x"].tenant == "acme" and nodes["x"].ttl_days == 3650  # clamped
    assert (nodes["y"].ttl_days, nodes["y"].payload_ttl_days) == (14, 14)  # payload never outlives the row


def test_a_span_names_its_tenant_only_when_the_transport_assigned_none():
    rec = Recorder()
    with rec.span("named", **{semconv.TRACEHOUSE_TENANT: "globex"}):
        pass
    with rec.span("unnamed"):
        pass
    retention = {"globex": Retention(5, 5)}
    nodes, _ = _normalize(rec, retention_for=lambda t: retention.get(t, Retention()))
    assert (nodes["named"].tenant, nodes["named"].ttl_days) == ("globex", 5)
    assert (nodes["unnamed"].tenant, nodes["unnamed"].ttl_days) == ("default", 30)
    nodes, _ = _normalize(rec, tenant="acme")  # an API key's tenant wins over the span's claim
    assert {n.tenant for n in nodes.values()} == {"acme"}


def test_an_agent_span_with_genai_messages_has_their_text_as_input_and_output():
    # invoke_agent spans may carry gen_ai.input.messages / gen_ai.output.messages (a Node.js
    # agent does, in tests/node/send_run.mjs): the run's input and output are their text.
    rec = Recorder()
    with rec.span(
        "invoke_agent helper",
        **{
            GA.GEN_AI_OPERATION_NAME: "invoke_agent",
            GA.GEN_AI_AGENT_NAME: "helper",
            GA.GEN_AI_INPUT_MESSAGES: _msgs(("user", "What is 2+2?")),
            GA.GEN_AI_OUTPUT_MESSAGES: _msgs(("assistant", "4")),
        },
    ):
        pass
    nodes, _events = _normalize(rec)
    node = nodes["invoke_agent helper"]
    assert node.run_root and (node.input, node.output) == ("What is 2+2?", "4")

"""OpenAI Agents SDK: agents, handoffs (as sub-agent runs), tools, guardrails, model calls.

A processor of the SDK's own tracing (``agents.add_trace_processor``) turns its trace and spans
into tracehouse's span shapes, built on the hand API:

- the SDK's trace (one ``Runner.run``) is a run, named after its first agent (inside a
  ``tracehouse.run(...)``, a step of that run instead);
- the first agent is an agent node of the run; an agent that receives a handoff, or that runs
  inside a tool (``agent.as_tool()``), is a sub-agent run linked to the run it came from;
- a model response is an LLM call (model, messages, tokens, cost from the price table), a
  function tool an ``execute_tool`` span with its arguments and result, a handoff and a
  guardrail steps; the SDK's task and turn spans add no node (their children go to their parent).

The SDK's default processor (which uploads traces to OpenAI) stays unless the application
removes it (``agents.set_trace_processors``). Content follows tracehouse's capture setting.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace

from tracehouse import semconv
from tracehouse.instrument import api
from tracehouse.instrument.capture import Capture, decoded
from tracehouse.instrument.frameworks import Integration
from tracehouse.vocabulary import NodeType

_TRANSPARENT = ("task", "turn")  # SDK spans that group others and add no node of their own


def enable(capture: Capture) -> None:
    from agents import add_trace_processor

    add_trace_processor(TracehouseProcessor())


INTEGRATION = Integration(name="openai-agents", library="openai-agents", supported=((0, 2), (1,)), enable=enable)


@dataclass
class _Open:
    """An open span of ours for one SDK trace or span."""

    span: Any
    ctx: Any
    handle: api.SpanHandle
    token: object = None
    run: _Open | None = None  # the open run span this one belongs to (itself for a run)
    input: Any = None  # a run's: its first model input
    output: str = ""  # a run's: its last model answer

    def close_run(self) -> None:
        """A run's input and output, from the model calls seen inside it."""
        if self.input is not None:
            self.handle.set_input(self.input)
        if self.output:
            self.handle.set_output(self.output)


@dataclass
class _Trace:
    root: _Open  # its run is itself when the trace is a run, else None (a step of another run)
    agent: str = ""  # the first agent's name, once it started
    error: tuple[str, str] | None = None  # (message, type) of the first failed agent
    handoffs: dict[str, Any] = field(default_factory=dict)  # receiving agent -> context it came from


def _first_user_text(messages: list[dict]) -> Any:
    return next((m.get("content") for m in messages if m.get("role") == "user"), None)


class TracehouseProcessor:
    """An ``agents.tracing.TracingProcessor`` (duck-typed: the SDK calls these six methods)."""

    def __init__(self) -> None:
        self._traces: dict[str, _Trace] = {}
        self._spans: dict[str, _Open | None] = {}  # None: a transparent span
        self._parents: dict[str, str] = {}  # SDK span id -> the SDK id its children hang from
        self._lock = threading.Lock()

    # --- traces: runs ----------------------------------------------------------------------------

    def on_trace_start(self, trace: Any) -> None:
        is_run = api.current_run() is None
        name = trace.name or "agent workflow"
        if is_run:
            metadata = dict(getattr(trace, "metadata", None) or {})
            scope: Any = api.run(name, conversation_id=getattr(trace, "group_id", None) or None, metadata=metadata)
        else:
            scope = api.node(name, NodeType.STEP)
        span, ctx, handle = scope.start()
        span.set_attribute(semconv.GEN_AI_WORKFLOW_NAME, name)
        root = _Open(span, ctx, handle)
        root.run = root if is_run else None
        with self._lock:
            self._traces[trace.trace_id] = _Trace(root)

    def on_trace_end(self, trace: Any) -> None:
        with self._lock:
            state = self._traces.pop(trace.trace_id, None)
        if state is None:
            return
        handle = state.root.handle
        if state.root.run is not None:
            state.root.close_run()
        if state.error is not None:
            handle.fail(*state.error)
        handle.end()

    # --- spans -----------------------------------------------------------------------------------

    def _parent(self, span: Any, state: _Trace) -> _Open:
        key = span.parent_id
        while key is not None and key in self._spans:
            found = self._spans[key]
            if found is not None:
                return found
            key = self._parents.get(key)
        return state.root

    def on_span_start(self, span: Any) -> None:
        data = span.span_data
        kind = getattr(data, "type", "")
        with self._lock:
            state = self._traces.get(span.trace_id)
            if state is None:
                return
            if kind in _TRANSPARENT:
                self._spans[span.span_id] = None
                if span.parent_id:
                    self._parents[span.span_id] = span.parent_id
                return
            parent = self._parent(span, state)
            scope, parent_ctx, starts_run = self._scope(data, kind, parent, state)
        opened = _Open(*scope.start(parent_ctx))
        opened.run = opened if starts_run else parent.run
        opened.token = otel_context.attach(opened.ctx)  # so that the SDK calls inside nest here
        with self._lock:
            self._spans[span.span_id] = opened

    def _scope(self, data: Any, kind: str, parent: _Open, state: _Trace) -> tuple[Any, Any, bool]:
        """The hand-API scope for an SDK span, the context to open it in, and whether it starts
        a (sub-agent) run."""
        if kind == "agent":
            came_from = state.handoffs.pop(data.name, None)
            if came_from is not None:  # a handoff: a sub-run of the agent that handed off
                return api.run(data.name), otel_trace.set_span_in_context(parent.span, came_from), True
            if state.agent:  # an agent inside another's tool: a sub-run of that agent's run
                return api.run(data.name), parent.ctx, True
            state.agent = data.name
            if state.root.run is not None:
                state.root.span.set_attribute(semconv.GEN_AI_AGENT_NAME, data.name)
                state.root.span.update_name(f"{semconv.OP_INVOKE_AGENT} {data.name}")
            return api.node(data.name, NodeType.AGENT), parent.ctx, False
        return self._node_scope(data, kind), parent.ctx, False

    @staticmethod
    def _node_scope(data: Any, kind: str) -> Any:
        if kind in ("response", "generation"):
            return api.llm_call(getattr(data, "model", None) or "", semconv.PROVIDER_OPENAI)
        if kind == "function":
            return api.tool(data.name, type="function")
        if kind == "handoff":
            return api.node("handoff", NodeType.STEP)
        if kind in ("guardrail", "custom"):
            return api.node(data.name, NodeType.STEP)
        if kind == "mcp_tools":
            return api.node(f"mcp list_tools {getattr(data, 'server', '') or ''}".strip(), NodeType.STEP)
        return api.node(kind or "span", NodeType.STEP)

    def on_span_end(self, span: Any) -> None:
        with self._lock:
            opened = self._spans.pop(span.span_id, None)
            self._parents.pop(span.span_id, None)
            state = self._traces.get(span.trace_id)
        if opened is None:
            return
        with contextlib.suppress(Exception):  # ended in another context than it started in
            otel_context.detach(opened.token)
        data = span.span_data
        kind = getattr(data, "type", "")
        record = getattr(self, f"_end_{kind}", None)
        if record is not None:
            record(opened, data, state)
        error = span.error
        if error:
            message = str(error.get("message", "") if isinstance(error, dict) else error)
            detail = error.get("data") if isinstance(error, dict) else None
            if isinstance(detail, dict) and detail.get("error"):
                message = f"{message}: {detail['error']}"  # a tool's own error
            opened.handle.fail(message, "AgentsError")
            if kind == "agent" and state is not None and state.error is None:
                state.error = (message, "AgentsError")
        if opened.run is opened:  # a sub-agent run ends
            opened.close_run()
        opened.handle.end()

    def _end_response(self, opened: _Open, data: Any, state: _Trace | None) -> None:
        from tracehouse.instrument.frameworks.openai_sdk import _input_messages, _record

        handle = opened.handle
        assert isinstance(handle, api.LLMCallHandle)
        messages = _input_messages(getattr(data, "input", None))
        if messages:
            handle.set_input(api.input_messages(messages))
        response = getattr(data, "response", None)
        if response is None:
            return
        model = getattr(response, "model", "") or ""
        _name_model(opened, model)
        instructions = getattr(response, "instructions", None)
        if isinstance(instructions, str) and instructions:
            handle.set_input([{"type": "text", "content": instructions}], semconv.GEN_AI_SYSTEM_INSTRUCTIONS)
        _seen(opened, state, messages, _record(handle, response))

    def _end_generation(self, opened: _Open, data: Any, state: _Trace | None) -> None:
        handle = opened.handle
        assert isinstance(handle, api.LLMCallHandle)
        messages = [m for m in (getattr(data, "input", None) or []) if isinstance(m, dict)]
        if messages:
            handle.set_input(api.input_messages(messages))
        model = getattr(data, "model", None) or ""
        _name_model(opened, model)
        output = [m for m in (getattr(data, "output", None) or []) if isinstance(m, dict)]
        usage = getattr(data, "usage", None) or {}
        handle.record_response(
            output or None,
            response_model=model or None,
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
        )
        _seen(opened, state, messages, output)

    def _end_function(self, opened: _Open, data: Any, state: _Trace | None) -> None:
        if data.input is not None:
            opened.handle.set_input(decoded(data.input))
        if data.output is not None:
            opened.handle.set_output(decoded(data.output) if isinstance(data.output, str) else str(data.output))

    def _end_handoff(self, opened: _Open, data: Any, state: _Trace | None) -> None:
        opened.span.update_name(f"handoff to {data.to_agent}")
        opened.handle.set_input(data.from_agent)
        opened.handle.set_output(data.to_agent)
        if state is not None and data.to_agent:
            with self._lock:
                state.handoffs[data.to_agent] = opened.ctx  # its run is the sender's

    def _end_guardrail(self, opened: _Open, data: Any, state: _Trace | None) -> None:
        triggered = bool(data.triggered)
        opened.span.set_attribute(semconv.TRACEHOUSE_GUARDRAIL_TRIGGERED, triggered)
        opened.handle.set_output({"triggered": triggered})
        if triggered:  # the SDK stops the run with an exception: the guardrail is where it failed
            error = (f"guardrail {data.name} tripwire triggered", "GuardrailTripwireTriggered")
            opened.handle.fail(*error)
            if state is not None and state.error is None:
                state.error = error

    def _end_custom(self, opened: _Open, data: Any, state: _Trace | None) -> None:
        if data.data:
            opened.handle.set_output(data.data)

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


def _seen(opened: _Open, state: _Trace | None, inputs: list[dict], outputs: list[dict]) -> None:
    """A run's input is its first model input; its output the last model answer. The trace's
    run sees every call of the trace (its output is what ``Runner.run`` returns), a sub-agent
    run its own."""
    for run in {id(r): r for r in (opened.run, state.root.run if state else None) if r is not None}.values():
        if run.input is None:
            run.input = _first_user_text(inputs)
        text = next((m.get("content") for m in outputs if m.get("content") and not m.get("tool_calls")), None)
        if text:
            run.output = str(text)


def _name_model(opened: _Open, model: str) -> None:
    if model:
        opened.span.set_attribute(semconv.GEN_AI_REQUEST_MODEL, model)
        opened.span.update_name(f"{semconv.OP_CHAT} {model}")

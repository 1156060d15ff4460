"""The instrumentation API: runs, nodes, LLM calls, tools, events and checkpoints.

Each of :func:`run`, :func:`node`, :func:`llm_call` and :func:`tool` returns a scope that works
as a context manager (``with`` / ``async with``) and as a decorator (of functions, coroutines,
generators and async generators). ``run``, ``node`` and ``tool`` also decorate bare
(``@tracehouse.tool``) or without a name (``@tracehouse.tool()``): the name is then the
function's ``__name__``; ``llm_call`` always needs its model. A misuse seen at decoration time
(no model, a name that is not a string, something that is not a function, a scope without a
name used in ``with``) is a ``TypeError`` that shows the form to write.

A scope opens one OpenTelemetry span named and attributed by the GenAI conventions, makes it
current (so anything started inside, including other instrumentors' spans, is its child), and
ends it with the outcome: an exception leaves ERROR status, ``error.type`` and the recorded
exception, and is re-raised untouched; cancellation (``asyncio.CancelledError``,
``KeyboardInterrupt``) shows as ``tracehouse.status=cancelled``.

The current run travels in the OpenTelemetry context, so it follows ``await``, asyncio tasks
and ``contextvars.copy_context()``; :class:`RunStamper` stamps its id on every span started
inside it. Spans of a generator are current only while the generator runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from tracehouse import pricing, semconv
from tracehouse._version import __version__
from tracehouse.instrument import settings
from tracehouse.vocabulary import NodeType
from tracehouse.vocabulary import Status as RunStatus

_RUN = otel_context.create_key("tracehouse_current_run")  # a context key, not an attribute


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    agent_name: str
    parent_run_id: str = ""
    ttl_days: int | None = None
    tenant: str | None = None
    conversation_id: str | None = None


def current_run() -> RunInfo | None:
    """The run the caller is inside, if any."""
    return otel_context.get_value(_RUN)


def new_run_id() -> str:
    """A UUIDv7: time-ordered, so runs sort by start in the store."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def _run_attributes(info: RunInfo) -> dict[str, Any]:
    """What every span of a run carries: its id, and its retention, tenant and conversation if set."""
    attributes: dict[str, Any] = {semconv.TRACEHOUSE_RUN_ID: info.run_id}
    if info.ttl_days is not None:
        attributes[semconv.TRACEHOUSE_TTL_DAYS] = info.ttl_days
    if info.tenant:
        attributes[semconv.TRACEHOUSE_TENANT] = info.tenant
    if info.conversation_id:
        attributes[semconv.GEN_AI_CONVERSATION_ID] = info.conversation_id
    return attributes


class RunStamper(SpanProcessor):
    """Stamps the current run's id (and retention, tenant) on every span started inside a run
    that does not carry it yet: other instrumentors' spans (tracehouse's own get it at start)."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        info = otel_context.get_value(_RUN, parent_context)
        attributes = span.attributes or {}
        if info is None or semconv.TRACEHOUSE_RUN_ID in attributes:
            return
        span.set_attributes(_run_attributes(info))
        if attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.OP_INVOKE_AGENT:
            # another framework's agent inside the run: a node of it, not a second root
            span.set_attribute(semconv.TRACEHOUSE_NODE_TYPE, NodeType.AGENT.value)

    def on_end(self, span: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


OWN_SCOPE = "tracehouse"  # the instrumentation scope of the spans this module makes
_tracer_cache: tuple[object, trace.Tracer] | None = None


def _tracer() -> trace.Tracer:
    """The tracer of the current global provider, made once per provider (making one per span
    costs more than the span)."""
    global _tracer_cache
    provider = trace.get_tracer_provider()
    if _tracer_cache is None or _tracer_cache[0] is not provider:
        _tracer_cache = (provider, provider.get_tracer(OWN_SCOPE, __version__))
    return _tracer_cache[1]


def _finish(span: Span, error: BaseException | None) -> None:
    if isinstance(error, asyncio.CancelledError | KeyboardInterrupt):
        span.set_attribute(semconv.TRACEHOUSE_STATUS, RunStatus.CANCELLED.value)
        span.set_attribute(semconv.ERROR_TYPE, type(error).__name__)
    elif error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, str(error) or type(error).__name__))
        span.set_attribute(semconv.ERROR_TYPE, type(error).__qualname__)
    span.end()


# --- handles: what the body of a scope can record --------------------------------------------------


class SpanHandle:
    """The open span of a scope."""

    output_attribute = semconv.TRACEHOUSE_NODE_OUTPUT
    input_attribute = semconv.TRACEHOUSE_NODE_INPUT

    def __init__(self, span: Span):
        self.span = span

    def set_output(self, value: Any) -> None:
        settings.capture().set(self.span, self.output_attribute, value)

    def set_attribute(self, key: str, value: Any) -> None:
        self.span.set_attribute(key, value)

    def event(self, name: str, **data: Any) -> None:
        _event(self.span, name, data)

    def set_input(self, value: Any, attribute: str | None = None) -> None:
        """The span's input, when it is known only after the span started (a callback API)."""
        settings.capture().set(self.span, attribute or self.input_attribute, value)

    def fail(self, message: str, error_type: str = "Error") -> None:
        """Mark the span failed without an exception object (an error a framework reports)."""
        self.span.set_status(Status(StatusCode.ERROR, message or error_type))
        self.span.set_attribute(semconv.ERROR_TYPE, error_type)

    def end(self, error: BaseException | None = None) -> None:
        """Close the span of :meth:`_Scope.start`, failed with ``error`` if given."""
        _finish(self.span, error)


class RunHandle(SpanHandle):
    output_attribute = semconv.TRACEHOUSE_RUN_OUTPUT
    input_attribute = semconv.TRACEHOUSE_RUN_INPUT

    def __init__(self, span: Span, info: RunInfo):
        super().__init__(span)
        self.info = info

    @property
    def run_id(self) -> str:
        return self.info.run_id


class ToolHandle(SpanHandle):
    output_attribute = semconv.GEN_AI_TOOL_CALL_RESULT
    input_attribute = semconv.GEN_AI_TOOL_CALL_ARGUMENTS

    def set_result(self, value: Any) -> None:
        self.set_output(value)


class LLMCallHandle(SpanHandle):
    output_attribute = semconv.GEN_AI_OUTPUT_MESSAGES
    input_attribute = semconv.GEN_AI_INPUT_MESSAGES

    def __init__(self, span: Span, model: str):
        super().__init__(span)
        self.model = model

    def record_response(
        self,
        output: str | list | None = None,
        *,
        finish_reasons: list[str] | None = None,
        response_id: str | None = None,
        response_model: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_tokens: int | None = None,
        cache_creation_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        cost_usd: float | None = None,
    ) -> None:
        """The model's answer, its usage, and its cost (from the price table unless given)."""
        span = self.span
        if output is not None:
            finish = finish_reasons[0] if finish_reasons else None
            self.set_output(output_messages(output, finish))
        if finish_reasons:
            span.set_attribute(semconv.GEN_AI_RESPONSE_FINISH_REASONS, list(finish_reasons))
        if response_id:
            span.set_attribute(semconv.GEN_AI_RESPONSE_ID, response_id)
        if response_model:
            span.set_attribute(semconv.GEN_AI_RESPONSE_MODEL, response_model)
        usage = {
            semconv.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
            semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cache_read_tokens,
            semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: cache_creation_tokens,
            semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: reasoning_tokens,
        }
        for key, value in usage.items():
            if value is not None:
                span.set_attribute(key, int(value))
        if cost_usd is None and (input_tokens or output_tokens):
            cost_usd = pricing.cost_usd(
                response_model or self.model,
                input_tokens or 0,
                output_tokens or 0,
                cache_read_tokens or 0,
                cache_creation_tokens or 0,
            )
        if cost_usd is not None:
            span.set_attribute(semconv.TRACEHOUSE_COST_USD, float(cost_usd))


# --- messages in the GenAI shape -----------------------------------------------------------------


def _parts(message: Mapping[str, Any]) -> list[dict]:
    if "parts" in message:
        return list(message["parts"])
    parts: list[dict] = []
    content = message.get("content")
    if message.get("role") == "tool" and message.get("tool_call_id"):
        return [{"type": "tool_call_response", "id": message["tool_call_id"], "response": content}]
    if isinstance(content, str) and content:
        parts.append({"type": "text", "content": content})
    elif isinstance(content, list):  # OpenAI content blocks
        for block in content:
            if isinstance(block, Mapping) and block.get("type") == "text":
                parts.append({"type": "text", "content": block.get("text", "")})
            else:
                parts.append(dict(block) if isinstance(block, Mapping) else {"type": "text", "content": str(block)})
    for call in message.get("tool_calls") or []:
        function = call.get("function", call)
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id", ""),
                "name": function.get("name", ""),
                "arguments": function.get("arguments"),
            }
        )
    return parts


def input_messages(messages: list[Mapping[str, Any]] | None) -> list[dict] | None:
    """Chat messages (OpenAI style or GenAI style) in the GenAI JSON shape."""
    if messages is None:
        return None
    return [{"role": m.get("role", "user"), "parts": _parts(m)} for m in messages]


def output_messages(output: str | list, finish_reason: str | None = None) -> list[dict]:
    if isinstance(output, str):
        output = [{"role": "assistant", "content": output}]
    messages = input_messages(output) or []
    if finish_reason:
        for message in messages:
            message.setdefault("finish_reason", finish_reason)
    return messages


# --- scopes ---------------------------------------------------------------------------------------


class _Scope:
    """One span, as a context manager or, for each call of a decorated function, anew."""

    handle_type: type[SpanHandle] = SpanHandle
    api_name = "node"  # the function that makes the scope, and a name to show it with in errors
    example = "plan"

    @property
    def input_attribute(self) -> str:
        return self.handle_type.input_attribute

    def __init__(self, name: str, kind: SpanKind, attributes: dict[str, Any], payloads: dict[str, Any]):
        self.name = name
        self.kind = kind
        self.attributes = {k: v for k, v in attributes.items() if v is not None}
        self.payloads = payloads
        self._open: list[tuple[Span, object, SpanHandle]] = []

    # subclasses may add to the context (a run) and build their own handle
    def _context(self, ctx: Any) -> Any:
        return ctx

    def _handle(self, span: Span) -> SpanHandle:
        return self.handle_type(span)

    def start(self, parent: Any = None) -> tuple[Span, Any, SpanHandle]:
        """Open the span without making it current, for instrumentors whose spans open and
        close in separate callbacks: returns the span, the context that has it (and its run)
        as current, for :func:`attached` or a child's ``start``, and its handle, whose
        ``end()`` closes it. ``parent``: the context to start in (default: the current one)."""
        ctx = self._context(otel_context.get_current() if parent is None else parent)
        attributes = self.attributes
        info = otel_context.get_value(_RUN, ctx)
        if info is not None and semconv.TRACEHOUSE_RUN_ID not in attributes:
            stamped = _run_attributes(info)
            if info.agent_name and attributes.get(semconv.TRACEHOUSE_NODE_TYPE) != NodeType.AGENT.value:
                # The run's agent on each of its spans (an agent node keeps its own name): a run
                # whose root never arrives (its process died) still says whose it was.
                stamped[semconv.GEN_AI_AGENT_NAME] = info.agent_name
            attributes = {**stamped, **attributes}  # at start: cheaper than stamping after
        span = _tracer().start_span(self.name, context=ctx, kind=self.kind, attributes=attributes)
        capture = settings.capture()
        for attribute, value in self.payloads.items():
            if value is not None:
                capture.set(span, attribute, value)
        return span, trace.set_span_in_context(span, ctx), self._handle(span)

    def __enter__(self) -> SpanHandle:
        span, ctx, handle = self.start()
        self._open.append((span, otel_context.attach(ctx), handle))
        return handle

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        span, token, _ = self._open.pop()
        otel_context.detach(token)
        _finish(span, exc)
        return False

    async def __aenter__(self) -> SpanHandle:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        return self.__exit__(exc_type, exc, tb)

    # --- as a decorator --------------------------------------------------------------------------

    def _for_call(self, fn: Callable, args: tuple, kwargs: dict) -> _Scope:
        """A fresh scope for one call; its input is the call's arguments unless one was given."""
        scope = self._copy()
        if scope.payloads.get(scope.input_attribute) is None and (args or kwargs):
            try:
                bound = inspect.signature(fn).bind_partial(*args, **kwargs)
                scope.payloads[scope.input_attribute] = {k: v for k, v in bound.arguments.items() if k != "self"}
            except TypeError:
                scope.payloads[scope.input_attribute] = {"args": args, "kwargs": kwargs}
        return scope

    def _copy(self) -> _Scope:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.payloads = dict(self.payloads)
        clone._open = []
        return clone

    def __call__(self, fn: Callable) -> Callable:
        if not callable(fn):
            raise TypeError(
                f"tracehouse.{self.api_name}(...) decorates a function, not {type(fn).__name__}: write it above a "
                f'def (@tracehouse.{self.api_name}("{self.example}")) or use it as '
                f'`with tracehouse.{self.api_name}("{self.example}") as handle:`'
            )
        if inspect.isasyncgenfunction(fn):
            return _async_generator(self, fn)
        if inspect.isgeneratorfunction(fn):
            return _generator(self, fn)
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def coroutine(*args: Any, **kwargs: Any) -> Any:
                async with self._for_call(fn, args, kwargs) as handle:
                    result = await fn(*args, **kwargs)
                    handle.set_output(result)
                    return result

            return coroutine

        @functools.wraps(fn)
        def function(*args: Any, **kwargs: Any) -> Any:
            with self._for_call(fn, args, kwargs) as handle:
                result = fn(*args, **kwargs)
                handle.set_output(result)
                return result

        return function


_F = TypeVar("_F", bound=Callable[..., Any])


class _Unnamed:
    """A scope still without its name, as ``@tracehouse.tool()`` writes it: it decorates a
    function, and takes the function's ``__name__`` for the name, as if it had been given. It has
    no span to open by itself, so ``with`` (and ``start``) is a ``TypeError``."""

    def __init__(self, scope_type: type[_Scope], make: Callable[[str], _Scope]):
        self.api_name = scope_type.api_name
        self.example = scope_type.example
        self.make = make

    def __call__(self, fn: _F) -> _F:
        name = getattr(fn, "__name__", None)
        if not callable(fn) or not isinstance(name, str):
            what = type(fn).__name__ if not callable(fn) else f"{fn!r}, which has no __name__"
            raise TypeError(
                f"tracehouse.{self.api_name}() without a name decorates a function and is named after it, not "
                f'{what}: give it a name, tracehouse.{self.api_name}("{self.example}")(...)'
            )
        return self.make(name)(fn)  # type: ignore[return-value]

    def start(self, parent: Any = None) -> Any:
        raise TypeError(
            f"tracehouse.{self.api_name}() needs a name unless it decorates a function: write "
            f'`with tracehouse.{self.api_name}("{self.example}") as handle:`'
        )

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> bool:
        return False

    async def __aenter__(self) -> Any:
        return self.start()

    async def __aexit__(self, *exc: Any) -> bool:
        return False


def _named(scope_type: type[_Scope], name: Any, make: Callable[[str], _Scope]) -> Any:
    """The scope ``make`` builds for ``name``, whichever way the decorator is written: named
    (``@tracehouse.tool("search")``, the only form that is also a context manager), empty
    (``@tracehouse.tool()``) or bare (``@tracehouse.tool``: called with the function itself).
    The last two are named after the function and decorate through the named form."""
    if isinstance(name, str):
        return make(name)
    if name is None:
        return _Unnamed(scope_type, make)
    if callable(name):
        return _Unnamed(scope_type, make)(name)
    raise TypeError(
        f"tracehouse.{scope_type.api_name}() takes a name (a string), not {type(name).__name__}: write "
        f'@tracehouse.{scope_type.api_name}("{scope_type.example}"), @tracehouse.{scope_type.api_name} (named after '
        f'the function) or `with tracehouse.{scope_type.api_name}("{scope_type.example}") as handle:`'
    )


@contextlib.contextmanager
def attached(ctx: Any) -> Iterator[None]:
    """Make ``ctx`` current for the duration of the block."""
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def _begin(scope: _Scope, fn: Callable, args: tuple, kwargs: dict) -> tuple[Span, Any, SpanHandle, Any]:
    """Open the span of one generator call and create the generator inside it."""
    span, ctx, handle = scope._for_call(fn, args, kwargs).start()
    with attached(ctx):
        body = fn(*args, **kwargs)
    return span, ctx, handle, body


def _end(span: Span, handle: SpanHandle, items: list[Any], error: BaseException | None = None) -> None:
    if error is None:
        handle.set_output(items)
    _finish(span, error)


def _generator(scope: _Scope, fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        span, ctx, handle, gen = _begin(scope, fn, args, kwargs)
        items: list[Any] = []
        sent: Any = None
        thrown: BaseException | None = None
        try:
            while True:
                with attached(ctx):  # the span is current only while the body runs
                    item = gen.throw(thrown) if thrown is not None else gen.send(sent)
                items.append(item)
                sent, thrown = None, None
                try:
                    sent = yield item
                except GeneratorExit:
                    raise
                except BaseException as exc:  # thrown in by the consumer: pass it on
                    thrown = exc
        except StopIteration as stop:
            _end(span, handle, items)
            return stop.value
        except GeneratorExit:  # the consumer stopped early: not an error
            gen.close()
            _end(span, handle, items)
            raise
        except BaseException as exc:
            _end(span, handle, items, exc)
            raise

    return wrapper


def _async_generator(scope: _Scope, fn: Callable) -> Callable:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        span, ctx, handle, agen = _begin(scope, fn, args, kwargs)
        items: list[Any] = []
        sent: Any = None
        thrown: BaseException | None = None
        try:
            while True:
                with attached(ctx):
                    item = await (agen.athrow(thrown) if thrown is not None else agen.asend(sent))
                items.append(item)
                sent, thrown = None, None
                try:
                    sent = yield item
                except GeneratorExit:
                    raise
                except BaseException as exc:
                    thrown = exc
        except StopAsyncIteration:
            _end(span, handle, items)
        except GeneratorExit:
            await agen.aclose()
            _end(span, handle, items)
            raise
        except BaseException as exc:
            _end(span, handle, items, exc)
            raise

    return wrapper


class _RunScope(_Scope):
    handle_type = RunHandle
    api_name = "run"
    example = "planner"

    def __init__(self, agent_name: str, run_id: str | None, ttl_days: int | None, tenant: str | None, **kwargs: Any):
        super().__init__(**kwargs)
        self.agent_name = agent_name
        self.fixed_run_id = run_id
        self.ttl_days = ttl_days
        self.tenant = tenant
        self._info: RunInfo | None = None

    def _context(self, ctx: Any) -> Any:
        parent = otel_context.get_value(_RUN, ctx)
        run_id = self.fixed_run_id or new_run_id()
        ttl = self.ttl_days if self.ttl_days is not None else (parent.ttl_days if parent else None)
        tenant = self.tenant or (parent.tenant if parent else None)
        conversation = self.attributes.get(semconv.GEN_AI_CONVERSATION_ID) or (
            parent.conversation_id if parent else None
        )
        self._info = RunInfo(run_id, self.agent_name, parent.run_id if parent else "", ttl, tenant, conversation)
        self.attributes = {
            k: v
            for k, v in self.attributes.items()
            if k not in (semconv.TRACEHOUSE_PARENT_RUN_ID, semconv.TRACEHOUSE_TTL_DAYS)
        }
        self.attributes[semconv.TRACEHOUSE_RUN_ID] = run_id
        if parent:
            self.attributes[semconv.TRACEHOUSE_PARENT_RUN_ID] = parent.run_id
        if ttl is not None:
            self.attributes[semconv.TRACEHOUSE_TTL_DAYS] = ttl
        return otel_context.set_value(_RUN, self._info, ctx)

    def _handle(self, span: Span) -> SpanHandle:
        assert self._info is not None
        return RunHandle(span, self._info)

    def _copy(self) -> _Scope:
        clone = super()._copy()
        clone.attributes = dict(self.attributes)
        return clone


def run(
    agent_name: str | Callable[..., Any] | None = None,
    input: Any = None,
    *,
    run_id: str | None = None,
    user_id: str | None = None,
    conversation_id: str | None = None,
    tenant: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    ttl_days: int | None = None,
    description: str | None = None,
) -> Any:
    """One run of an agent: an ``invoke_agent {agent_name}`` span. Inside another run, a
    sub-agent run linked to it. As a decorator, ``agent_name`` defaults to the function's name
    (``@tracehouse.run`` or ``@tracehouse.run(user_id=...)``)."""

    def make(agent_name: str) -> _RunScope:
        attributes: dict[str, Any] = {
            semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT,
            semconv.GEN_AI_AGENT_NAME: agent_name,
            semconv.GEN_AI_AGENT_DESCRIPTION: description,
            semconv.GEN_AI_CONVERSATION_ID: conversation_id,
            semconv.USER_ID: user_id,
            semconv.TRACEHOUSE_TENANT: tenant,  # honoured by a server without API keys; a key's tenant wins
        }
        for key, value in (metadata or {}).items():
            attributes[f"{semconv.TRACEHOUSE_RUN_METADATA}.{key}"] = (
                value if isinstance(value, str | int | float | bool) else str(value)
            )
        return _RunScope(
            agent_name,
            run_id,
            ttl_days,
            tenant,
            name=f"{semconv.OP_INVOKE_AGENT} {agent_name}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            payloads={semconv.TRACEHOUSE_RUN_INPUT: input},
        )

    return _named(_RunScope, agent_name, make)


def node(name: str | Callable[..., Any] | None = None, type: NodeType | str = NodeType.STEP, input: Any = None) -> Any:
    """A step of a run: planning, critique, a graph node... As a decorator, ``name`` defaults to
    the function's name (``@tracehouse.node`` or ``@tracehouse.node(type="retriever")``)."""
    node_type = NodeType.parse(type.value if isinstance(type, NodeType) else type)
    attributes = {semconv.TRACEHOUSE_NODE_TYPE: node_type.value}
    return _named(
        _Scope, name, lambda name: _Scope(name, SpanKind.INTERNAL, attributes, {semconv.TRACEHOUSE_NODE_INPUT: input})
    )


_LLM_PARAMS = {
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "max_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
    "top_k": semconv.GEN_AI_REQUEST_TOP_K,
    "frequency_penalty": semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": semconv.GEN_AI_REQUEST_PRESENCE_PENALTY,
    "stop_sequences": semconv.GEN_AI_REQUEST_STOP_SEQUENCES,
    "seed": semconv.GEN_AI_REQUEST_SEED,
    "choice_count": semconv.GEN_AI_REQUEST_CHOICE_COUNT,
    "stream": semconv.GEN_AI_REQUEST_STREAM,
}


class _LLMScope(_Scope):
    handle_type = LLMCallHandle
    api_name = "llm_call"
    example = "gpt-4o"

    def __init__(self, model: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.model = model

    def _handle(self, span: Span) -> SpanHandle:
        return LLMCallHandle(span, self.model)


def llm_call(
    model: str,
    provider: str | None = None,
    messages: list[Mapping[str, Any]] | None = None,
    *,
    system: str | None = None,
    operation: str = semconv.OP_CHAT,
    **params: Any,
) -> _LLMScope:
    """One call to a model: a ``chat {model}`` span with ``gen_ai.request.*``. Record the answer
    with ``handle.record_response(...)``. Known ``params``: temperature, max_tokens, top_p,
    top_k, frequency_penalty, presence_penalty, stop_sequences, seed, choice_count, stream.
    There is no bare form: nothing in a function tells which model it calls."""
    if not isinstance(model, str):
        given = "the decorated function (@tracehouse.llm_call, bare)" if callable(model) else type(model).__name__
        raise TypeError(
            'tracehouse.llm_call needs a model: write @tracehouse.llm_call("gpt-4o") or '
            '@tracehouse.llm_call(model="gpt-4o", provider="openai"), or `with tracehouse.llm_call("gpt-4o") as llm:`'
            f" (the model is a string; it was given {given})"
        )
    unknown = set(params) - set(_LLM_PARAMS)
    if unknown:
        raise TypeError(f"llm_call() got unknown parameter(s): {', '.join(sorted(unknown))}")
    attributes: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: operation,
        semconv.GEN_AI_REQUEST_MODEL: model,
        semconv.GEN_AI_PROVIDER_NAME: provider,
    }
    for key, value in params.items():
        attributes[_LLM_PARAMS[key]] = list(value) if isinstance(value, tuple) else value
    system_parts = [{"type": "text", "content": system}] if system else None
    return _LLMScope(
        model,
        name=f"{operation} {model}",
        kind=SpanKind.CLIENT,
        attributes=attributes,
        payloads={
            semconv.GEN_AI_INPUT_MESSAGES: input_messages(messages),
            semconv.GEN_AI_SYSTEM_INSTRUCTIONS: system_parts,
        },
    )


class _ToolScope(_Scope):
    handle_type = ToolHandle
    api_name = "tool"
    example = "search_flights"


def tool(
    name: str | Callable[..., Any] | None = None,
    arguments: Any = None,
    *,
    call_id: str | None = None,
    description: str | None = None,
    type: str | None = None,
) -> Any:
    """One tool execution: an ``execute_tool {name}`` span with its call id, arguments and
    (``handle.set_result``) result. As a decorator, ``name`` defaults to the function's name
    (``@tracehouse.tool`` or ``@tracehouse.tool(description=...)``)."""

    def make(name: str) -> _ToolScope:
        attributes = {
            semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
            semconv.GEN_AI_TOOL_NAME: name,
            semconv.GEN_AI_TOOL_CALL_ID: call_id,
            semconv.GEN_AI_TOOL_DESCRIPTION: description,
            semconv.GEN_AI_TOOL_TYPE: type,
        }
        return _ToolScope(
            f"{semconv.OP_EXECUTE_TOOL} {name}",
            SpanKind.INTERNAL,
            attributes,
            {semconv.GEN_AI_TOOL_CALL_ARGUMENTS: arguments},
        )

    return _named(_ToolScope, name, make)


def _event(span: Span, name: str, data: Mapping[str, Any], event_name: str | None = None) -> None:
    if not span.is_recording():
        return
    encoded = settings.capture().encode(dict(data)) if data else None
    # The data attribute marks the span event as a run event, even when its content is not kept.
    span.add_event(event_name or name, {semconv.TRACEHOUSE_EVENT_DATA: encoded[0] if encoded else "{}"})


def event(name: str, **data: Any) -> None:
    """An ordered event of the current run (``iteration_started``, ``object_stored``...) on the
    current span; ``data`` is recorded as JSON when content capture is on."""
    _event(trace.get_current_span(), name, data)


def checkpoint(checkpoint_id: str, state: Any) -> None:
    """A point to resume the current run from, with the state needed to do so."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    attributes = {semconv.TRACEHOUSE_CHECKPOINT_ID: checkpoint_id}
    encoded = settings.capture().encode(state)
    if encoded is not None:
        attributes[semconv.TRACEHOUSE_CHECKPOINT_STATE] = encoded[0]
    span.add_event(semconv.EVENT_TRACEHOUSE_CHECKPOINT, attributes)

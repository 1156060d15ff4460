"""The instrumentation API, checked span by span with the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import re

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import tracehouse
from tracehouse import semconv
from tracehouse.instrument import current_run

SECRET_KEY = "sk-proj-AbCdEf0123456789GhIjKlMnOp"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracehouse.configure("test-agent", exporter=exporter, batch=False)
    yield exporter
    exporter.clear()


def _by_name(exporter) -> dict:
    return {s.name: s for s in exporter.get_finished_spans()}


class Critique(Exception):
    pass


def plan_execute_critique() -> str:
    with tracehouse.run(
        "planner", input="Plan a trip to Rome", user_id="u-1", conversation_id="c-1", metadata={"plan": "gold"}
    ) as run:
        with tracehouse.node("plan"):
            with tracehouse.llm_call(
                "gpt-4o-mini",
                "openai",
                [{"role": "user", "content": "Plan Rome"}],
                system="Be brief.",
                temperature=0.2,
                max_tokens=200,
            ) as llm:
                llm.record_response(
                    "1. flights 2. hotel",
                    finish_reasons=["stop"],
                    response_id="resp-1",
                    response_model="gpt-4o-mini-2024-07-18",
                    input_tokens=1000,
                    output_tokens=100,
                    cache_read_tokens=200,
                )
        with tracehouse.node("execute", type="step"):
            with tracehouse.tool("search_flights", {"to": "FCO"}, call_id="call-1") as t:
                t.set_result({"best": 620})
            tracehouse.event("iteration_started", i=1)
            tracehouse.checkpoint("after-search", {"flights": 620})
            with tracehouse.run("budget-checker", input="620 within 1500?") as sub:
                sub.set_output("yes")
                sub_run_id = sub.run_id
        with pytest.raises(Critique), tracehouse.node("critique"):
            raise Critique("the plan has no rain option")
        run.set_output("Day 1: Colosseum")
        return run.run_id, sub_run_id


def test_the_agent_emits_the_exact_spans(spans):
    run_id, sub_run_id = plan_execute_critique()
    s = _by_name(spans)
    assert set(s) == {
        "invoke_agent planner",
        "plan",
        "chat gpt-4o-mini",
        "execute",
        "execute_tool search_flights",
        "invoke_agent budget-checker",
        "critique",
    }
    root, plan, chat = s["invoke_agent planner"], s["plan"], s["chat gpt-4o-mini"]
    execute, tool_span, sub, critique = (
        s["execute"],
        s["execute_tool search_flights"],
        s["invoke_agent budget-checker"],
        s["critique"],
    )
    # parent/child structure
    parent = {name: span.parent.span_id if span.parent else None for name, span in s.items()}
    assert parent["invoke_agent planner"] is None
    for child in ("plan", "execute", "critique"):
        assert parent[child] == root.context.span_id
    assert parent["chat gpt-4o-mini"] == plan.context.span_id
    assert parent["execute_tool search_flights"] == execute.context.span_id
    assert parent["invoke_agent budget-checker"] == execute.context.span_id
    assert len({span.context.trace_id for span in s.values()}) == 1
    # kinds
    assert chat.kind is SpanKind.CLIENT and root.kind is SpanKind.INTERNAL and tool_span.kind is SpanKind.INTERNAL
    # the run
    a = root.attributes
    assert a[semconv.GEN_AI_OPERATION_NAME] == "invoke_agent" and a[semconv.GEN_AI_AGENT_NAME] == "planner"
    assert (a[semconv.TRACEHOUSE_RUN_ID], a[semconv.USER_ID], a[semconv.GEN_AI_CONVERSATION_ID]) == (
        run_id,
        "u-1",
        "c-1",
    )
    assert (
        a[semconv.TRACEHOUSE_RUN_INPUT] == "Plan a trip to Rome"
        and a[semconv.TRACEHOUSE_RUN_OUTPUT] == "Day 1: Colosseum"
    )
    assert a[f"{semconv.TRACEHOUSE_RUN_METADATA}.plan"] == "gold"
    assert semconv.TRACEHOUSE_PARENT_RUN_ID not in a
    # every span of the run carries its id; the sub-agent run has its own, linked to the parent
    for name in ("plan", "chat gpt-4o-mini", "execute", "execute_tool search_flights", "critique"):
        assert s[name].attributes[semconv.TRACEHOUSE_RUN_ID] == run_id
        assert s[name].attributes[semconv.GEN_AI_CONVERSATION_ID] == "c-1"  # the run's conversation, on every span
    assert sub.attributes[semconv.TRACEHOUSE_RUN_ID] == sub_run_id != run_id
    assert sub.attributes[semconv.TRACEHOUSE_PARENT_RUN_ID] == run_id
    # the LLM call
    c = chat.attributes
    assert (c[semconv.GEN_AI_OPERATION_NAME], c[semconv.GEN_AI_REQUEST_MODEL], c[semconv.GEN_AI_PROVIDER_NAME]) == (
        "chat",
        "gpt-4o-mini",
        "openai",
    )
    assert (c[semconv.GEN_AI_REQUEST_TEMPERATURE], c[semconv.GEN_AI_REQUEST_MAX_TOKENS]) == (0.2, 200)
    assert json.loads(c[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Plan Rome"}]}
    ]
    assert json.loads(c[semconv.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(c[semconv.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "1. flights 2. hotel"}], "finish_reason": "stop"}
    ]
    assert tuple(c[semconv.GEN_AI_RESPONSE_FINISH_REASONS]) == ("stop",)
    assert (c[semconv.GEN_AI_RESPONSE_ID], c[semconv.GEN_AI_RESPONSE_MODEL]) == ("resp-1", "gpt-4o-mini-2024-07-18")
    assert (
        c[semconv.GEN_AI_USAGE_INPUT_TOKENS],
        c[semconv.GEN_AI_USAGE_OUTPUT_TOKENS],
        c[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS],
    ) == (1000, 100, 200)
    assert c[semconv.TRACEHOUSE_COST_USD] == pytest.approx((800 * 0.15 + 200 * 0.075 + 100 * 0.6) / 1e6)
    # the tool
    t = tool_span.attributes
    assert (t[semconv.GEN_AI_OPERATION_NAME], t[semconv.GEN_AI_TOOL_NAME], t[semconv.GEN_AI_TOOL_CALL_ID]) == (
        "execute_tool",
        "search_flights",
        "call-1",
    )
    assert json.loads(t[semconv.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"to": "FCO"}
    assert json.loads(t[semconv.GEN_AI_TOOL_CALL_RESULT]) == {"best": 620}
    # nodes, events, checkpoint
    assert plan.attributes[semconv.TRACEHOUSE_NODE_TYPE] == "step"
    events = {e.name: e.attributes for e in execute.events}
    assert json.loads(events["iteration_started"][semconv.TRACEHOUSE_EVENT_DATA]) == {"i": 1}
    cp = events[semconv.EVENT_TRACEHOUSE_CHECKPOINT]
    assert cp[semconv.TRACEHOUSE_CHECKPOINT_ID] == "after-search"
    assert json.loads(cp[semconv.TRACEHOUSE_CHECKPOINT_STATE]) == {"flights": 620}
    # the error: ERROR status, error.type, the exception recorded, re-raised untouched (pytest.raises)
    assert critique.status.status_code is StatusCode.ERROR
    assert critique.status.description == "the plan has no rain option"
    assert critique.attributes[semconv.ERROR_TYPE] == "Critique"
    assert (
        critique.events[0].name == "exception"
        and "no rain option" in critique.events[0].attributes["exception.message"]
    )
    assert root.status.status_code is StatusCode.UNSET


def test_cancellation_shows_as_cancelled(spans):
    async def agent() -> None:
        async with tracehouse.run("waiter"):
            async with tracehouse.node("wait"):
                await asyncio.sleep(10)

    async def main() -> None:
        task = asyncio.create_task(agent())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    for name in ("invoke_agent waiter", "wait"):
        span = _by_name(spans)[name]
        assert span.attributes[semconv.TRACEHOUSE_STATUS] == "cancelled"
        assert span.attributes[semconv.ERROR_TYPE] == "CancelledError"
        assert span.status.status_code is StatusCode.UNSET


def test_parallel_async_tasks_keep_their_own_parents(spans):
    @tracehouse.node("fetch")
    async def fetch(source: str) -> str:
        with tracehouse.tool("http_get", {"source": source}):
            await asyncio.sleep(0.01)
        return f"data from {source}"

    @tracehouse.run("gatherer")
    async def gatherer() -> list[str]:
        return await asyncio.gather(fetch("a"), fetch("b"), fetch("c"))

    assert asyncio.run(gatherer()) == ["data from a", "data from b", "data from c"]
    finished = spans.get_finished_spans()
    root = next(s for s in finished if s.name == "invoke_agent gatherer")
    fetches = [s for s in finished if s.name == "fetch"]
    tools = [s for s in finished if s.name == "execute_tool http_get"]
    assert len(fetches) == len(tools) == 3
    assert all(f.parent.span_id == root.context.span_id for f in fetches)
    fetch_of = {f.context.span_id: json.loads(f.attributes[semconv.TRACEHOUSE_NODE_INPUT])["source"] for f in fetches}
    for t in tools:  # each tool call sits under the fetch that made it
        assert fetch_of[t.parent.span_id] == json.loads(t.attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS])["source"]
    run_id = root.attributes[semconv.TRACEHOUSE_RUN_ID]
    assert {s.attributes[semconv.TRACEHOUSE_RUN_ID] for s in finished} == {run_id}
    assert json.loads(root.attributes[semconv.TRACEHOUSE_RUN_OUTPUT]) == ["data from a", "data from b", "data from c"]


def test_a_generator_span_is_current_only_while_the_generator_runs(spans):
    tracer = trace.get_tracer("tests")

    @tracehouse.node("stream_tokens", type="llm")
    def stream(n: int):
        for i in range(n):
            with tracer.start_as_current_span(f"inside-{i}"):
                pass
            yield f"tok{i}"

    with tracehouse.run("streamer") as run:
        received = []
        for token in stream(3):
            with tracer.start_as_current_span(f"consumer-{token}"):
                received.append(token)
        assert current_run().run_id == run.run_id
    assert received == ["tok0", "tok1", "tok2"]
    s = _by_name(spans)
    gen, root = s["stream_tokens"], s["invoke_agent streamer"]
    assert gen.parent.span_id == root.context.span_id
    for i in range(3):
        assert s[f"inside-{i}"].parent.span_id == gen.context.span_id  # inside the generator
        assert s[f"consumer-tok{i}"].parent.span_id == root.context.span_id  # not inside it
    assert json.loads(gen.attributes[semconv.TRACEHOUSE_NODE_OUTPUT]) == ["tok0", "tok1", "tok2"]
    assert gen.attributes[semconv.TRACEHOUSE_NODE_TYPE] == "llm"
    assert current_run() is None


def test_async_generators_and_early_stops(spans):
    @tracehouse.node("numbers")
    async def numbers():
        for i in range(10):
            yield i

    async def main() -> list[int]:
        out = []
        agen = numbers()
        async for value in agen:
            out.append(value)
            if value == 2:
                break
        await agen.aclose()
        return out

    assert asyncio.run(main()) == [0, 1, 2]
    span = _by_name(spans)["numbers"]
    assert json.loads(span.attributes[semconv.TRACEHOUSE_NODE_OUTPUT]) == [0, 1, 2]
    assert span.status.status_code is StatusCode.UNSET and span.end_time is not None


def test_decorated_functions_record_arguments_and_results(spans):
    @tracehouse.tool("add")
    def add(a: int, b: int) -> int:
        return a + b

    @tracehouse.run("calculator")
    def calculator(question: str) -> int:
        return add(2, b=3)

    assert calculator("2 + 3?") == 5
    s = _by_name(spans)
    assert json.loads(s["invoke_agent calculator"].attributes[semconv.TRACEHOUSE_RUN_INPUT]) == {"question": "2 + 3?"}
    assert s["invoke_agent calculator"].attributes[semconv.TRACEHOUSE_RUN_OUTPUT] == "5"
    assert json.loads(s["execute_tool add"].attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"a": 2, "b": 3}
    assert calculator("again") == 5  # each call is its own run
    roots = [x for x in spans.get_finished_spans() if x.name == "invoke_agent calculator"]
    assert len({r.attributes[semconv.TRACEHOUSE_RUN_ID] for r in roots}) == 2


def _returns(a: int, b: int = 1) -> list[int]:
    """A plain function."""
    return [a, b]


async def _awaits(a: int, b: int = 1) -> list[int]:
    """A coroutine function."""
    await asyncio.sleep(0)
    return [a, b]


def _yields(a: int, b: int = 1):
    """A generator function."""
    yield a
    yield b


async def _async_yields(a: int, b: int = 1):
    """An async generator function."""
    yield a
    await asyncio.sleep(0)
    yield b


def _call(fn, *args):
    """What calling ``fn`` gives its caller, whatever kind of function it is."""
    if inspect.isasyncgenfunction(fn):

        async def drain() -> list:
            return [item async for item in fn(*args)]

        return asyncio.run(drain())
    if inspect.iscoroutinefunction(fn):
        return asyncio.run(fn(*args))
    if inspect.isgeneratorfunction(fn):
        return list(fn(*args))
    return fn(*args)


def _kinds(fn) -> list[bool]:
    return [
        inspect.iscoroutinefunction(fn),
        inspect.isgeneratorfunction(fn),
        inspect.isasyncgenfunction(fn),
    ]


_UNNAMED = {  # the span a scope named after ``fn`` opens, its identifying attributes and output attribute
    "run": (
        "invoke_agent {}",
        lambda name: {semconv.GEN_AI_OPERATION_NAME: "invoke_agent", semconv.GEN_AI_AGENT_NAME: name},
        semconv.TRACEHOUSE_RUN_OUTPUT,
    ),
    "node": ("{}", lambda name: {semconv.TRACEHOUSE_NODE_TYPE: "step"}, semconv.TRACEHOUSE_NODE_OUTPUT),
    "tool": (
        "execute_tool {}",
        lambda name: {semconv.GEN_AI_OPERATION_NAME: "execute_tool", semconv.GEN_AI_TOOL_NAME: name},
        semconv.GEN_AI_TOOL_CALL_RESULT,
    ),
}


@pytest.mark.parametrize("fn", [_returns, _awaits, _yields, _async_yields], ids=lambda fn: fn.__name__.strip("_"))
@pytest.mark.parametrize("form", ["bare", "empty"])
@pytest.mark.parametrize("api_name", sorted(_UNNAMED))
def test_a_decorator_without_a_name_is_named_after_the_function(spans, api_name, form, fn):
    """``@tracehouse.tool`` and ``@tracehouse.tool()`` are ``@tracehouse.tool("fn_name")``."""
    api = getattr(tracehouse, api_name)
    decorated = api(fn) if form == "bare" else api()(fn)
    assert _call(decorated, 2, 3) == _call(fn, 2, 3) == [2, 3]  # what the caller gets is unchanged
    assert (decorated.__name__, decorated.__doc__, decorated.__wrapped__) == (fn.__name__, fn.__doc__, fn)
    assert _kinds(decorated) == _kinds(fn)
    [span] = spans.get_finished_spans()
    span_name, identity, output = _UNNAMED[api_name]
    assert span.name == span_name.format(fn.__name__) and span.kind is SpanKind.INTERNAL
    assert identity(fn.__name__).items() <= span.attributes.items()
    assert json.loads(span.attributes[output]) == [2, 3]
    assert span.status.status_code is StatusCode.UNSET
    _call(api(fn.__name__)(fn), 2, 3)  # the named form, for comparison
    unnamed, named = spans.get_finished_spans()

    def shape(s) -> tuple:
        return s.name, s.kind, {k: v for k, v in s.attributes.items() if k != semconv.TRACEHOUSE_RUN_ID}

    assert shape(unnamed) == shape(named)


def test_bare_decorators_nest_and_take_the_other_arguments(spans):
    @tracehouse.tool
    def search_flights(to: str) -> dict:
        return {"to": to, "best": 620}

    @tracehouse.node(type="retriever")
    async def fetch_prices(city: str) -> dict:
        return search_flights(to=city)

    @tracehouse.tool(description="Hotels of a city")
    def search_hotels(city: str):
        yield f"{city}-1"
        yield f"{city}-2"

    @tracehouse.run
    async def planner(question: str) -> list:
        return [await fetch_prices("FCO"), list(search_hotels("Rome"))]

    assert asyncio.run(planner("Rome?")) == [{"to": "FCO", "best": 620}, ["Rome-1", "Rome-2"]]
    s = _by_name(spans)
    assert set(s) == {
        "invoke_agent planner",
        "fetch_prices",
        "execute_tool search_flights",
        "execute_tool search_hotels",
    }
    root = s["invoke_agent planner"]
    assert s["fetch_prices"].parent.span_id == root.context.span_id
    assert s["execute_tool search_flights"].parent.span_id == s["fetch_prices"].context.span_id
    assert s["execute_tool search_hotels"].parent.span_id == root.context.span_id
    assert s["fetch_prices"].attributes[semconv.TRACEHOUSE_NODE_TYPE] == "retriever"
    assert s["execute_tool search_hotels"].attributes[semconv.GEN_AI_TOOL_DESCRIPTION] == "Hotels of a city"
    assert json.loads(s["execute_tool search_flights"].attributes[semconv.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"to": "FCO"}
    run_id = root.attributes[semconv.TRACEHOUSE_RUN_ID]
    assert {x.attributes[semconv.TRACEHOUSE_RUN_ID] for x in s.values()} == {run_id}


def test_llm_call_has_no_bare_form_and_says_what_to_write(spans):
    right_form = re.escape('write @tracehouse.llm_call("gpt-4o")')
    with pytest.raises(TypeError, match=f"needs a model: {right_form}.*decorated function"):

        @tracehouse.llm_call
        def summarize(text: str) -> str:
            return text

    with pytest.raises(TypeError, match=f"needs a model: {right_form}.*given int"):
        tracehouse.llm_call(4)
    assert spans.get_finished_spans() == ()


@pytest.mark.parametrize(("api_name", "example"), [("run", "planner"), ("node", "plan"), ("tool", "search_flights")])
def test_misuses_seen_at_decoration_time_say_what_to_write(spans, api_name, example):
    api = getattr(tracehouse, api_name)
    with_form = re.escape(f'`with tracehouse.{api_name}("{example}") as handle:`')
    with pytest.raises(TypeError, match=f"needs a name unless it decorates a function: write {with_form}"), api():
        pass

    async def in_async_with() -> None:
        async with api():
            pass

    with pytest.raises(TypeError, match=with_form):
        asyncio.run(in_async_with())
    with pytest.raises(TypeError, match=with_form):
        api().start()  # the instrumentors' way in
    with pytest.raises(
        TypeError, match=r"takes a name \(a string\), not int: write " + re.escape(f"@tracehouse.{api_name}(")
    ):
        api(42)
    with pytest.raises(TypeError, match=f"decorates a function, not str: .*{with_form}"):
        api(example)("not a function")
    with pytest.raises(TypeError, match="without a name decorates a function and is named after it, not int"):
        api()(42)
    with pytest.raises(
        TypeError, match=r"which has no __name__: give it a name, " + re.escape(f'tracehouse.{api_name}("')
    ):
        api(functools.partial(_returns, 1))
    assert spans.get_finished_spans() == ()  # nothing half-recorded


def _all_text(exporter) -> str:
    parts = []
    for span in exporter.get_finished_spans():
        parts += [str(v) for v in span.attributes.values()]
        for event in span.events:
            parts += [str(v) for v in event.attributes.values()]
    return "\n".join(parts)


def test_redaction_removes_planted_secrets_from_everything_exported():
    exporter = InMemorySpanExporter()
    tracehouse.configure(
        exporter=exporter, batch=False, redact_patterns=[r"ACME-\d{6}"], redact_paths=["$.customer.ssn", "password"]
    )
    planted = {
        "key": SECRET_KEY,
        "bearer": "Authorization: Bearer abcdef0123456789ZYXW",
        "email": "write to jane.doe@example.com",
        "card": "card 4111 1111 1111 1111 exp 12/29",
        "custom": "order ACME-123456",
    }
    with tracehouse.run("leaky", input=f"my key is {SECRET_KEY}") as run:
        with tracehouse.llm_call("gpt-4o", messages=[{"role": "user", "content": " ".join(planted.values())}]) as llm:
            llm.record_response(f"contact jane.doe@example.com, {planted['bearer']}")
        with tracehouse.tool("crm", {"customer": {"name": "Jane", "ssn": "123-45-6789"}, "password": "hunter2!"}) as t:
            t.set_result({"note": planted["card"]})
        tracehouse.event("debug", secret=SECRET_KEY, mail="jane.doe@example.com")
        tracehouse.checkpoint("cp", {"token": planted["bearer"], "custom": planted["custom"]})
        run.set_output(planted["custom"])
    text = _all_text(exporter)
    for leaked in (
        SECRET_KEY,
        "abcdef0123456789ZYXW",
        "jane.doe@example.com",
        "4111 1111 1111 1111",
        "ACME-123456",
        "123-45-6789",
        "hunter2!",
    ):
        assert leaked not in text, leaked
    for marker in (
        "[REDACTED:api_key]",
        "[REDACTED:bearer_token]",
        "[REDACTED:email]",
        "[REDACTED:card_number]",
        "[REDACTED:pattern]",
        "[REDACTED:path]",
    ):
        assert marker in text, marker
    assert "Jane" in text and "12/29" in text  # the rest stays


def test_numbers_that_are_not_cards_stay():
    from tracehouse.instrument.capture import Redactor

    assert Redactor().text("order 1234 5678 9012 3456 shipped") == "order 1234 5678 9012 3456 shipped"  # fails Luhn
    assert Redactor().text("4242424242424242") == "[REDACTED:card_number]"


def test_payloads_over_the_cap_are_truncated_with_a_marker():
    exporter = InMemorySpanExporter()
    tracehouse.configure(exporter=exporter, batch=False, max_payload_bytes=1000)
    with tracehouse.run("big", input="é" * 5000):
        pass
    span = exporter.get_finished_spans()[0]
    value = span.attributes[semconv.TRACEHOUSE_RUN_INPUT]
    assert len(value.encode()) <= 1000 and value.endswith("…[truncated by tracehouse: 10000 bytes]")
    assert span.attributes[f"{semconv.TRACEHOUSE_TRUNCATED}.{semconv.TRACEHOUSE_RUN_INPUT}"] == 10000


def test_content_capture_can_be_off_by_option_or_environment(monkeypatch):
    exporter = InMemorySpanExporter()
    monkeypatch.setenv(semconv.ENV_CAPTURE_MESSAGE_CONTENT, "false")
    tracehouse.configure(exporter=exporter, batch=False)
    with tracehouse.run("private", input="secret plan"):
        with tracehouse.llm_call("gpt-4o", messages=[{"role": "user", "content": "hi"}]) as llm:
            llm.record_response("hello", input_tokens=3, output_tokens=1)
    s = {x.name: x for x in exporter.get_finished_spans()}
    assert semconv.TRACEHOUSE_RUN_INPUT not in s["invoke_agent private"].attributes
    assert semconv.GEN_AI_INPUT_MESSAGES not in s["chat gpt-4o"].attributes
    assert s["chat gpt-4o"].attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 3  # usage is not content
    tracehouse.configure(exporter=exporter, batch=False, capture_content=True)  # the explicit option wins
    with tracehouse.run("public", input="open plan"):
        pass
    assert exporter.get_finished_spans()[-1].attributes[semconv.TRACEHOUSE_RUN_INPUT] == "open plan"


def test_configuring_again_replaces_the_exporter_and_keeps_the_applications():
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    app_exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(app_exporter))  # the app's own
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    tracehouse.configure(exporter=first, batch=False)
    with tracehouse.run("one"):
        pass
    tracehouse.configure(exporter=second, batch=False)
    with tracehouse.run("two"):
        pass
    assert [s.name for s in first.get_finished_spans()] == ["invoke_agent one"]
    assert [s.name for s in second.get_finished_spans()] == ["invoke_agent two"]
    assert [s.name for s in app_exporter.get_finished_spans()] == ["invoke_agent one", "invoke_agent two"]
    assert second.get_finished_spans()[0].attributes[semconv.TRACEHOUSE_RUN_ID]  # still stamped


def test_unknown_llm_parameters_are_refused():
    with pytest.raises(TypeError, match="temprature"):
        tracehouse.llm_call("gpt-4o", temprature=0.1)


def _answered(model: str, tokens: int) -> None:
    with tracehouse.llm_call(model, "openai") as llm:
        llm.record_response("ok", input_tokens=tokens, output_tokens=1)


def test_a_model_call_around_another_is_recorded_as_a_step(spans):
    """A framework's model span around an instrumented SDK call would count the call twice:
    the outer one becomes a step, whatever lies between them; other model calls stay calls."""
    with tracehouse.run("wrapper-agent"):
        with tracehouse.llm_call("framework-model", "openai"):  # wraps an SDK call directly
            _answered("sdk-model", 10)
        with tracehouse.llm_call("outer", "openai"):  # wraps one through a step, twice
            with tracehouse.node("retrying"):
                _answered("try-1", 20)
                _answered("try-2", 30)
        _answered("plain", 40)  # a sibling of the wrappers, nested in none
        with tracehouse.node("agent-step", type="agent"):
            _answered("inside-a-step", 50)
    types = {
        s.name: s.attributes.get(semconv.TRACEHOUSE_NODE_TYPE) for s in spans.get_finished_spans() if "chat" in s.name
    }
    assert types == {
        "chat framework-model": "step",
        "chat sdk-model": None,
        "chat outer": "step",
        "chat try-1": None,
        "chat try-2": None,
        "chat plain": None,
        "chat inside-a-step": None,
    }
    from tracehouse.instrument.setup import _processor

    assert _processor is not None and not _processor.nested_calls._inside  # nothing left behind


def test_run_ids_are_time_ordered_uuids():
    import uuid

    from tracehouse.instrument import new_run_id

    ids = [new_run_id() for _ in range(50)]
    assert all(uuid.UUID(i).version == 7 for i in ids) and len(set(ids)) == 50
    stamps = [i[:13] for i in ids]  # the first 48 bits: milliseconds since the epoch
    assert stamps == sorted(stamps)


def _expected_cost() -> float:
    from tracehouse import pricing

    return pricing.cost_usd("gpt-4o-mini-2024-07-18", 1000, 100, 200)


def test_the_agent_reads_back_as_one_run_from_an_in_process_store(store):
    config = tracehouse.configure(store=store, batch=False)
    run_id, sub_run_id = plan_execute_critique()
    config.flush()
    rows = store.query(
        "SELECT RunId, ParentRunId, AgentName, Status, NodeCount, FailedNodes, LlmCalls, ToolCalls, InputTokens, "
        f"OutputTokens, CostUsd, InputPreview, OutputPreview, UserId FROM {store.table('runs')} FINAL "
        "ORDER BY NodeCount DESC"
    )
    assert [r[:10] for r in rows] == [
        (run_id, "", "planner", "completed", 5, 1, 1, 1, 1000, 100),
        (sub_run_id, run_id, "budget-checker", "completed", 0, 0, 0, 0, 0, 0),
    ]
    assert rows[0][10] == pytest.approx(_expected_cost())
    assert rows[0][11:] == ("Plan a trip to Rome", "Day 1: Colosseum", "u-1")
    events = store.query(
        f"SELECT Kind, Name FROM {store.table('events')} FINAL WHERE RunId = {{r:String}} "
        "AND Kind IN ('checkpoint', 'custom', 'tool_call', 'tool_result') ORDER BY Timestamp, Seq",
        {"r": run_id},
    )
    assert events == [
        ("tool_call", "search_flights"),
        ("tool_result", "search_flights"),
        ("custom", "iteration_started"),
        ("checkpoint", "after-search"),
    ]


def test_the_agent_reads_back_as_one_run_through_tracehouse_serve(tmp_path):
    from serve_helpers import Server, dump_store

    srv = Server(str(tmp_path / "data")).start()
    try:
        config = tracehouse.configure("e2e", endpoint=srv.http, batch=False)
        run_id, _ = plan_execute_critique()
        config.flush()
    finally:
        srv.stop()
    rows = dump_store(
        srv.store_dir,
        "SELECT RunId, Status, NodeCount, LlmCalls, InputTokens, OutputTokens, CostUsd "
        "FROM tracehouse.runs FINAL WHERE ParentRunId = ''",
    )
    assert len(rows) == 1 and rows[0][:6] == [run_id, "completed", 5, 1, 1000, 100]
    assert rows[0][6] == pytest.approx(_expected_cost())


def test_logs_carry_the_current_span_and_run(store):
    import logging

    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

    logs = InMemoryLogRecordExporter()
    tracehouse.configure(exporter=InMemorySpanExporter(), log_exporter=logs, batch=False)
    log = logging.getLogger("tests.agent.logs")
    log.setLevel(logging.INFO)
    with tracehouse.run("chatty") as run, tracehouse.node("step") as step:
        log.warning("retrying %s", "search")
        span_id = step.span.get_span_context().span_id
    log.warning("outside any run")
    inside, outside = [r.log_record for r in logs.get_finished_logs()][-2:]
    assert inside.body == "retrying search" and inside.span_id == span_id
    assert inside.attributes[semconv.TRACEHOUSE_RUN_ID] == run.run_id
    assert semconv.TRACEHOUSE_RUN_ID not in (outside.attributes or {})
    # In-process, the same records land in the store's otel_logs with their run.
    tracehouse.configure(store=store, batch=False)
    with tracehouse.run("chatty-stored") as stored_run:
        log.error("stored failure")
    rows = store.query(f"SELECT Body, SeverityText, RunId FROM {store.table('otel_logs')} FINAL")
    assert rows == [("stored failure", "ERROR", stored_run.run_id)]
    tracehouse.configure(exporter=InMemorySpanExporter(), logs=False, batch=False)  # the handler goes away
    assert not any(type(h).__name__ == "LoggingHandler" for h in logging.getLogger().handlers)


def test_shutdown_undoes_configure_and_opentelemetry_logs_are_not_forwarded():
    import logging

    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

    from tracehouse.instrument import shutdown

    logs = InMemoryLogRecordExporter()
    spans = InMemorySpanExporter()
    tracehouse.configure(exporter=spans, log_exporter=logs, batch=False)
    logging.getLogger("opentelemetry.exporter.otlp.test").error("exporter trouble")  # must not loop back
    logging.getLogger("tests.app").error("app trouble")
    assert [r.log_record.body for r in logs.get_finished_logs()] == ["app trouble"]
    shutdown()
    with tracehouse.run("after-shutdown"):
        pass
    logging.getLogger("tests.app").error("not exported")
    assert "invoke_agent after-shutdown" not in [s.name for s in spans.get_finished_spans()]
    assert len(logs.get_finished_logs()) == 1
    assert not any(type(h).__name__ == "LoggingHandler" for h in logging.getLogger().handlers)

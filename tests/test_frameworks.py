"""Auto-instrumentation: the real SDKs and frameworks, from PyPI, against a fake model server on
127.0.0.1 (``fake_models``), exporting over OTLP to a real ``tracehouse serve``; each test reads
the stored run back through the HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import serve_helpers
from fake_models import INPUT_TOKENS, FakeModels, error, text, tool_call
from test_api_agents import wait_for_history_item, wait_for_run

import tracehouse
from tracehouse.instrument import InstrumentationWarning, auto
from tracehouse.instrument.auto import INTEGRATIONS, enabled
from tracehouse.instrument.frameworks import Integration
from tracehouse.pricing import cost_usd

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = serve_helpers.Server(str(tmp_path_factory.mktemp("frameworks") / "data"), ())
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def models():
    fake = FakeModels()
    yield fake
    fake.close()


@pytest.fixture
def recorder(server):
    """tracehouse configured to send to the server, and every installed framework instrumented
    (once for the whole session: auto() is idempotent)."""
    config = tracehouse.configure("frameworks-test", endpoint=server.http, batch=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InstrumentationWarning)  # already on from an earlier test
        auto()
    return config


def _read_back(server, config, run_id: str) -> tuple[dict, dict, list]:
    config.flush()
    item = wait_for_run(server.http, run_id)
    client = tracehouse.Client(server.http)
    return item, client.logs(run_id).model_dump(), client.events(run_id).model_dump()["events"]


def _run_of_agent(server, agent: str, status: str) -> str:
    """The id of the agent's newest run with that status, once the server has stored it."""
    item = wait_for_history_item(
        server.http, lambda item: item["status"] == status, f"a {status} run of {agent}", agent=agent
    )
    return item["run_id"]


def _llm_nodes(logs: dict) -> list[dict]:
    return [n for n in logs["nodes"] if n["type"] == "llm"]


def _tool_calls(events: list) -> list[tuple[str, dict]]:
    return [(e["name"], json.loads(e["content"])) for e in events if e["kind"] == "tool_call"]


# --- auto() itself ------------------------------------------------------------------------------


def test_auto_twice_warns_and_changes_nothing(recorder):
    assert set(enabled()) == set(INTEGRATIONS)  # everything the dev extra installs
    with pytest.warns(InstrumentationWarning, match="already instrumented"):
        assert auto() == []
    with pytest.warns(InstrumentationWarning, match="already instrumented"):
        assert auto(["openai"]) == []
    with pytest.raises(ValueError, match="unknown framework"):
        auto(["not-a-framework"])


def test_an_unsupported_version_warns_and_is_left_alone(monkeypatch):
    called = []
    old = Integration("oldlib", "openai", ((99, 0), (100,)), lambda capture: called.append(capture))
    monkeypatch.setitem(INTEGRATIONS, "oldlib", old)
    with pytest.warns(InstrumentationWarning, match=r"openai .* is not supported .*>=99.0,<100"):
        assert auto(["oldlib"]) == []
    missing = Integration("missing", "no-such-distribution-here", ((0,), (1,)), lambda capture: called.append(1))
    monkeypatch.setitem(INTEGRATIONS, "missing", missing)
    with pytest.warns(InstrumentationWarning, match="not installed"):
        assert auto(["missing"]) == []
    assert called == [] and "oldlib" not in enabled()


def test_a_missing_extra_is_named(monkeypatch):
    def enable(capture):
        raise ImportError("no instrumentor", name="opentelemetry.instrumentation.somelib")

    monkeypatch.setitem(INTEGRATIONS, "somelib", Integration("somelib", "openai", ((0,), (99,)), enable))
    with pytest.warns(InstrumentationWarning, match=r"pip install 'tracehouse\[somelib\]'"):
        assert auto(["somelib"]) == []


# --- OpenAI -------------------------------------------------------------------------------------


def test_openai_chat_and_responses_sync_async_streaming_tools_and_errors(server, models, recorder):
    import openai

    client = openai.OpenAI(base_url=f"{models.url}/v1", api_key="test", max_retries=0)
    aclient = openai.AsyncOpenAI(base_url=f"{models.url}/v1", api_key="test", max_retries=0)
    models.queue(
        tool_call("get_weather", city="Paris"),
        text("It is sunny in Paris today"),
        text("Hello from the Responses API"),
        text("streamed Responses answer"),
        text("raw answer"),
        error(500),
    )
    # The prompt carries an e-mail address: openai-v2 records it, tracehouse redacts it on export.
    messages = [{"role": "user", "content": "Weather in Paris? Write to jane.doe@example.com"}]
    with tracehouse.run("openai-agent", input="Weather in Paris?") as run:
        first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
        call = first.choices[0].message.tool_calls[0]
        with tracehouse.tool("get_weather", json.loads(call.function.arguments), call_id=call.id) as t:
            t.set_result({"forecast": "sunny"})
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

        async def responses() -> tuple[str, list[str]]:
            answer = await aclient.responses.create(model="gpt-4o-mini", input="Say hello", instructions="Be brief")
            events = [e.type async for e in await aclient.responses.create(model="gpt-4o", input="Go", stream=True)]
            return answer.output_text, events

        hello, event_types = asyncio.run(responses())
        raw = client.responses.with_raw_response.create(model="gpt-4o-mini", input="Raw please")
        assert raw.headers["content-type"].startswith("application/json") and raw.parse().output_text == "raw answer"
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        run.set_output(streamed)
    assert (streamed, hello, event_types[-1]) == ("It is sunny in Paris today", "Hello from the Responses API",
                                                  "response.completed")  # fmt: skip

    item, logs, events = _read_back(server, recorder, run.run_id)
    llm = _llm_nodes(logs)
    assert [n["metadata"]["model"] for n in llm] == [
        "gpt-4o-mini",
        "gpt-4o-mini",
        "gpt-4o-mini",
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o-mini",
    ]
    assert [n["status"] for n in llm] == ["success"] * 5 + ["failed"]
    assert "500" in llm[-1]["error_message"] and llm[-1]["metadata"]["error_type"]
    done = llm[:5]
    assert [n["metadata"]["input_tokens"] for n in done] == [INPUT_TOKENS] * 5
    assert [n["metadata"]["output_tokens"] for n in done] == [7, 6, 5, 3, 2]
    expected = sum(cost_usd(n["metadata"]["model"], INPUT_TOKENS, n["metadata"]["output_tokens"]) for n in done)
    assert expected > 0 and item["cost_cents"] == pytest.approx(expected * 100, rel=1e-3)
    assert item["tokens_used"] == 5 * INPUT_TOKENS + 7 + 6 + 5 + 3 + 2
    # Streams are assembled when they end; the prompt and the answer are the node's input and output.
    assert "It is sunny in Paris today" in done[1]["output"] and "Weather in Paris?" in done[1]["input"]
    assert "jane.doe@example.com" not in done[1]["input"] and "[REDACTED:email]" in done[1]["input"]
    assert "Hello from the Responses API" in done[2]["output"] and "Say hello" in done[2]["input"]
    assert any(e["role"] == "system" and "Be brief" in e["content"] for e in events)  # the instructions
    assert "streamed Responses answer" in done[3]["output"]
    assert "raw answer" in done[4]["output"] and "Raw please" in done[4]["input"]  # a raw response, parsed
    # The tool call the model made, with its arguments, and the tool's own node with its result.
    assert ("get_weather", {"city": "Paris"}) in _tool_calls(events)
    tool = next(n for n in logs["nodes"] if n["type"] == "tool")
    assert "sunny" in tool["output"] and "Paris" in tool["input"]
    assert item["status"] == "success" and item["output"] == "It is sunny in Paris today"


# --- Anthropic ----------------------------------------------------------------------------------


def test_anthropic_messages_sync_async_streaming_tool_use_and_errors(server, models, recorder):
    import anthropic

    client = anthropic.Anthropic(base_url=models.url, api_key="test", max_retries=0)  # after auto()
    aclient = anthropic.AsyncAnthropic(base_url=models.url, api_key="test", max_retries=0)
    models.queue(tool_call("lookup_order", order_id="A-17"), text("Your order A-17 ships tomorrow"), error(529))
    model = "claude-haiku-4-5"  # a current model: the SDK warns about deprecated ones
    question = [{"role": "user", "content": "Where is my order A-17?"}]
    with tracehouse.run("claude-agent", input="Where is my order A-17?") as run:
        first = client.messages.create(model=model, max_tokens=200, messages=question)
        use = first.content[0]

        async def streamed() -> str:
            async with aclient.messages.stream(model=model, max_tokens=200, messages=question) as stream:
                return await stream.get_final_text()

        answer = asyncio.run(streamed())
        with pytest.raises(anthropic.APIStatusError):
            client.messages.create(model=model, max_tokens=200, messages=question)
        run.set_output(answer)
    assert (use.type, use.name, use.input, answer) == ("tool_use", "lookup_order", {"order_id": "A-17"},
                                                       "Your order A-17 ships tomorrow")  # fmt: skip

    item, logs, events = _read_back(server, recorder, run.run_id)
    llm = _llm_nodes(logs)
    assert [n["status"] for n in llm] == ["success", "success", "failed"]
    assert all(n["metadata"]["model"] == model for n in llm)
    assert [n["metadata"]["output_tokens"] for n in llm[:2]] == [7, 5]
    assert item["tokens_used"] == 2 * INPUT_TOKENS + 7 + 5
    expected = cost_usd(model, INPUT_TOKENS, 7) + cost_usd(model, INPUT_TOKENS, 5)
    assert expected > 0 and item["cost_cents"] == pytest.approx(expected * 100, rel=1e-3)
    assert "ships tomorrow" in llm[1]["output"] and "A-17" in llm[1]["input"]
    assert ("lookup_order", {"order_id": "A-17"}) in _tool_calls(events)
    assert llm[2]["metadata"]["error_type"]


# --- LangChain / LangGraph ----------------------------------------------------------------------


def _weather_graph(answers: list):
    """A LangGraph agent: a chat model node that may call a tool, a tool node, back to the model.
    The model is LangChain's own fake chat model, answering the given messages in turn."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.tools import tool
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    @tool
    def get_weather(city: str) -> str:
        """The weather of a city."""
        if city == "Atlantis":
            raise ValueError("no weather station in Atlantis")
        return f"sunny in {city}"

    class ToolCallingFake(GenericFakeChatModel):
        def bind_tools(self, tools, **kwargs):
            return self

    model = ToolCallingFake(messages=iter(answers))

    def agent(state):  # no annotations: LangGraph resolves them in this module's globals
        return {"messages": [model.invoke(state["messages"])]}

    def route(state):
        return "tools" if state["messages"][-1].tool_calls else END

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([get_weather], handle_tool_errors=False))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["tools", END])
    graph.add_edge("tools", "agent")
    return graph.compile().with_config(run_name="weather-graph")


def test_a_langgraph_run_is_one_run_with_the_graph_nodes_model_and_tool_calls(server, recorder):
    from langchain_core.messages import AIMessage

    usage = {"input_tokens": 42, "output_tokens": 6, "total_tokens": 48}
    answers = [
        AIMessage(content="", tool_calls=[{"name": "get_weather", "args": {"city": "Rome"}, "id": "call_1"}]),
        AIMessage(content="It is sunny in Rome", usage_metadata=usage),
    ]
    result = _weather_graph(answers).invoke({"messages": [("user", "Weather in Rome?")]})
    assert result["messages"][-1].content == "It is sunny in Rome"
    recorder.flush()
    run_id = _run_of_agent(server, "weather-graph", "success")  # listed under the graph's run name
    item, logs, _ = _read_back(server, recorder, run_id)
    assert item["status"] == "success" and "Weather in Rome?" in item["input"]
    assert "It is sunny in Rome" in logs["final_output"]  # the graph's output state, in full

    by_id = {n["id"]: n for n in logs["nodes"]}
    names = [n["metadata"]["name"] for n in logs["nodes"]]
    # The graph's nodes in order, each with what ran inside it.
    assert [n for n in names if n in ("agent", "tools")] == ["agent", "tools", "agent"]
    tool = next(n for n in logs["nodes"] if n["type"] == "tool")
    assert tool["metadata"]["name"] == "get_weather" and "Rome" in tool["input"] and "sunny in Rome" in tool["output"]
    assert by_id[tool["metadata"]["parent_id"]]["metadata"]["name"] == "tools"
    llm = _llm_nodes(logs)
    assert len(llm) == 2 and all(by_id[n["metadata"]["parent_id"]]["metadata"]["name"] == "agent" for n in llm)
    assert "sunny in Rome" in llm[1]["output"]
    assert (llm[1]["metadata"]["input_tokens"], llm[1]["metadata"]["output_tokens"]) == (42, 6)


def test_langchain_chat_openai_over_the_instrumented_sdk_counts_each_call_once(server, models, recorder):
    """LangChain's ChatOpenAI calls the OpenAI SDK: with both integrations on, each call is a
    LangChain model span with the SDK's span inside; the outer one is a step, the call counts once."""
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(model="gpt-4o-mini", base_url=f"{models.url}/v1", api_key="test", max_retries=0)
    models.queue(text("Bonjour"), text("streamed bonjour"))
    with tracehouse.run("langchain-openai", input="Say hello") as run:
        first = chat.invoke("Say hello in French")
        streamed = "".join(chunk.content for chunk in chat.stream("Again, streamed"))
        run.set_output(streamed)
    assert (first.content, streamed) == ("Bonjour", "streamed bonjour")
    item, logs, _ = _read_back(server, recorder, run.run_id)
    llm = _llm_nodes(logs)
    assert [(n["metadata"]["name"], n["metadata"]["output_tokens"]) for n in llm] == [
        ("chat gpt-4o-mini", 1),
        ("chat gpt-4o-mini", 2),
    ]
    # LangChain's span for each call (its tracer keeps it out of the context, so the SDK's span
    # is its sibling) is a step now, with the prompt and answer it saw
    wrappers = [n for n in logs["nodes"] if n["metadata"]["name"] == "ChatOpenAI"]
    assert [n["type"] for n in wrappers] == ["step", "step"] and "Bonjour" in wrappers[0]["output"]
    assert item["tokens_used"] == 2 * INPUT_TOKENS + 1 + 2
    expected = cost_usd("gpt-4o-mini", INPUT_TOKENS, 1) + cost_usd("gpt-4o-mini", INPUT_TOKENS, 2)
    assert item["cost_cents"] == pytest.approx(expected * 100, rel=1e-3)


def test_a_failing_langgraph_tool_fails_its_node_and_the_run(server, recorder):
    from langchain_core.messages import AIMessage

    answers = [AIMessage(content="", tool_calls=[{"name": "get_weather", "args": {"city": "Atlantis"}, "id": "c2"}])]
    with pytest.raises(ValueError, match="Atlantis"):
        _weather_graph(answers).invoke({"messages": [("user", "Weather in Atlantis?")]})
    recorder.flush()
    logs = _read_back(server, recorder, _run_of_agent(server, "weather-graph", "failed"))[1]
    tool = next(n for n in logs["nodes"] if n["type"] == "tool")
    assert tool["status"] == "failed" and "no weather station in Atlantis" in tool["error_message"]
    assert any(e["node_id"] == tool["id"] for e in logs["errors"])


# --- OpenAI Agents SDK --------------------------------------------------------------------------


def _weather_agents(models):
    """A triage agent (Responses API, an input guardrail) that hands off to a weather agent
    (chat completions, a working and a failing tool)."""
    import openai
    from agents import (
        Agent,
        GuardrailFunctionOutput,
        OpenAIChatCompletionsModel,
        OpenAIResponsesModel,
        function_tool,
        input_guardrail,
    )

    client = openai.AsyncOpenAI(base_url=f"{models.url}/v1", api_key="test", max_retries=0)

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    # With its own error function, the SDK puts the tool's error in its trace (the default
    # function's details stay out of traces).
    @function_tool(failure_error_function=lambda ctx, error: f"no forecast: {error}")
    def get_forecast(city: str) -> str:
        """Tomorrow's weather in a city."""
        raise RuntimeError("forecast service down")

    @input_guardrail
    async def on_topic(ctx, agent, user_input):
        forbidden = "stock" in str(user_input)
        return GuardrailFunctionOutput(output_info={"forbidden": forbidden}, tripwire_triggered=forbidden)

    weather = Agent(
        name="weather_agent",
        instructions="Answer weather questions.",
        tools=[get_weather, get_forecast],
        model=OpenAIChatCompletionsModel("gpt-4o-mini", client),
    )
    return Agent(
        name="triage",
        instructions="Hand weather questions off.",
        handoffs=[weather],
        input_guardrails=[on_topic],
        model=OpenAIResponsesModel("gpt-4o-mini", client),
    )


def test_an_openai_agents_sdk_run_with_a_handoff_tools_and_a_guardrail(server, models, recorder, monkeypatch):
    from agents import InputGuardrailTripwireTriggered, Runner

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the SDK's own uploader stays idle
    triage = _weather_agents(models)
    models.queue(
        tool_call("transfer_to_weather_agent"),
        tool_call("get_weather", city="Paris"),
        tool_call("get_forecast", city="Paris"),
        text("It is sunny in Paris"),
    )
    result = asyncio.run(Runner.run(triage, "Weather in Paris?"))
    assert result.final_output == "It is sunny in Paris"
    recorder.flush()

    # The SDK's trace is one run of the first agent; with the openai integration on too, each
    # model call is also recorded by the SDK's instrumentation, and counted once.
    run_id = _run_of_agent(server, "triage", "success")
    item, logs, events = _read_back(server, recorder, run_id)
    assert (item["input"], item["output"]) == ("Weather in Paris?", "It is sunny in Paris")
    by_type: dict[str, list[str]] = {}
    for n in logs["nodes"]:
        by_type.setdefault(n["type"], []).append(n["metadata"]["name"])
    assert by_type["agent"] == ["triage", "invoke_agent weather_agent"]
    assert by_type["llm"] == ["chat gpt-4o-mini"]
    assert {"on_topic", "handoff to weather_agent", "chat gpt-4o-mini"} <= set(by_type["step"])
    assert item["tokens_used"] == INPUT_TOKENS + 7
    assert item["cost_cents"] == pytest.approx(cost_usd("gpt-4o-mini", INPUT_TOKENS, 7) * 100, rel=1e-3)
    assert ("transfer_to_weather_agent", {}) in _tool_calls(events)

    # The handoff: a sub-agent run of its own, linked to the run that handed off.
    (sub_id,) = [n["metadata"]["run_id"] for n in logs["nodes"] if n["metadata"]["name"].startswith("invoke_agent")]
    sub_item, sub_logs, sub_events = _read_back(server, recorder, sub_id)
    assert sub_id != run_id and (sub_item["status"], sub_item["output"]) == ("success", "It is sunny in Paris")
    llm = _llm_nodes(sub_logs)
    assert [n["metadata"]["output_tokens"] for n in llm] == [7, 7, 5]
    assert sub_item["tokens_used"] == 3 * INPUT_TOKENS + 7 + 7 + 5
    tools = {n["metadata"]["name"]: n for n in sub_logs["nodes"] if n["type"] == "tool"}
    weather, forecast = tools["execute_tool get_weather"], tools["execute_tool get_forecast"]
    assert json.loads(weather["input"]) == {"city": "Paris"} and "sunny in Paris" in weather["output"]
    assert forecast["status"] == "failed" and "forecast service down" in forecast["error_message"]
    assert any(e["node_id"] == forecast["id"] for e in sub_logs["errors"])
    assert ("get_weather", {"city": "Paris"}) in _tool_calls(sub_events)
    assert "It is sunny in Paris" in llm[-1]["output"]

    # A guardrail that trips fails the run; its step says so.
    models.queue(text("(never asked)"))
    with pytest.raises(InputGuardrailTripwireTriggered):
        asyncio.run(Runner.run(triage, "Which stock should I buy?"))
    recorder.flush()
    failed = _read_back(server, recorder, _run_of_agent(server, "triage", "failed"))[1]
    guardrail = next(n for n in failed["nodes"] if n["metadata"]["name"] == "on_topic")
    assert json.loads(guardrail["output"]) == {"triggered": True}
    assert any("tripwire" in e["message"].lower() for e in failed["errors"])
    models.turns.clear()


def test_an_agent_used_as_a_tool_is_a_sub_agent_run(server, models, recorder, monkeypatch):
    import openai
    from agents import Agent, OpenAIResponsesModel, Runner

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    client = openai.AsyncOpenAI(base_url=f"{models.url}/v1", api_key="test", max_retries=0)
    translator = Agent(name="translator", instructions="Translate.", model=OpenAIResponsesModel("gpt-4o-mini", client))
    desk = Agent(
        name="desk",
        instructions="Use the translator.",
        tools=[translator.as_tool(tool_name="translate", tool_description="Translate to French")],
        model=OpenAIResponsesModel("gpt-4o-mini", client),
    )
    models.queue(tool_call("translate", input="hello"), text("bonjour"), text("It is bonjour"))
    assert asyncio.run(Runner.run(desk, "Translate hello")).final_output == "It is bonjour"
    recorder.flush()
    item, logs, _ = _read_back(server, recorder, _run_of_agent(server, "desk", "success"))
    tool = next(n for n in logs["nodes"] if n["type"] == "tool")
    assert tool["metadata"]["name"] == "execute_tool translate" and "bonjour" in tool["output"]
    # the translator ran inside the tool: a sub-agent run whose root hangs from the tool's span
    (sub,) = [n for n in logs["nodes"] if n["metadata"]["name"] == "invoke_agent translator"]
    assert sub["metadata"]["parent_id"] == tool["id"] and sub["metadata"]["run_id"] != item["run_id"]
    sub_item = wait_for_run(server.http, sub["metadata"]["run_id"])
    assert (sub_item["output"], sub_item["tokens_used"]) == ("bonjour", INPUT_TOKENS + 1)
    assert item["tokens_used"] == 2 * INPUT_TOKENS + 7 + 3  # the desk's own two calls


def test_a_streamed_openai_agents_sdk_run_reads_back(server, models, recorder, monkeypatch):
    import openai
    from agents import Agent, OpenAIResponsesModel, RunConfig, Runner

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    client = openai.AsyncOpenAI(base_url=f"{models.url}/v1", api_key="test", max_retries=0)
    agent = Agent(name="streamer", instructions="Be brief.", model=OpenAIResponsesModel("gpt-4o", client))
    models.queue(text("a streamed agent answer"))

    async def consume() -> str:
        streamed = Runner.run_streamed(agent, "Stream please", run_config=RunConfig(group_id="thread-7"))
        async for _ in streamed.stream_events():
            pass
        return streamed.final_output

    assert asyncio.run(consume()) == "a streamed agent answer"
    recorder.flush()
    item, logs, _ = _read_back(server, recorder, _run_of_agent(server, "streamer", "success"))
    (llm,) = _llm_nodes(logs)
    assert "a streamed agent answer" in llm["output"] and llm["metadata"]["model"] == "gpt-4o"
    assert item["tokens_used"] == INPUT_TOKENS + 4 and item["output"] == "a streamed agent answer"
    # the SDK's group id is the run's conversation
    conversation = tracehouse.Client(server.http).conversation("thread-7").model_dump()["events"]
    assert any(e["content"] == "a streamed agent answer" for e in conversation)


# --- Pydantic AI --------------------------------------------------------------------------------


def test_a_pydantic_ai_agent_run_reads_back(server, recorder):
    from pydantic_ai import Agent
    from pydantic_ai.models.test import TestModel

    agent = Agent(TestModel(), name="pydantic-support")

    @agent.tool_plain
    def lookup_order(order_id: str) -> str:
        return f"order {order_id} ships tomorrow"

    with tracehouse.run("support-desk", input="Where is my order?") as run:
        result = agent.run_sync("Where is my order?")
        run.set_output(result.output)
    item, logs, events = _read_back(server, recorder, run.run_id)
    # The pydantic-ai agent is a sub-agent node of the tracehouse run, with its calls inside.
    names = [n["metadata"]["name"] for n in logs["nodes"]]
    assert "invoke_agent pydantic-support" in names and "execute_tool lookup_order" in names
    llm = _llm_nodes(logs)
    assert len(llm) == 2 and all(n["metadata"]["model"] == "test" for n in llm)
    expected_tokens = sum(n["metadata"]["input_tokens"] + n["metadata"]["output_tokens"] for n in llm)
    assert expected_tokens > 0 and item["tokens_used"] == expected_tokens  # the agent's aggregate is not added
    # pydantic-ai's invoke_agent span is a node of the run, not a second root of it
    assert (item["input"], item["output"]) == ("Where is my order?", result.output)
    assert next(n for n in logs["nodes"] if n["metadata"]["name"] == "invoke_agent pydantic-support")["type"] == "agent"
    tool = next(n for n in logs["nodes"] if n["type"] == "tool")
    assert "ships tomorrow" in tool["output"]
    assert any(name == "lookup_order" for name, _ in _tool_calls(events))


# --- OpenLLMetry, without tracehouse in the process -------------------------------------------------

OPENLLMETRY_APP = """
import json, sys
import openai
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=sys.argv[2] + "/v1/traces")))
trace.set_tracer_provider(provider)
OpenAIInstrumentor().instrument()
client = openai.OpenAI(base_url=sys.argv[1], api_key="test", max_retries=0)
tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
with trace.get_tracer("app").start_as_current_span("llmetry-workflow") as root:
    messages = [{"role": "user", "content": "Weather in Oslo?"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    print("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
print(format(root.get_span_context().trace_id, "032x"))
provider.shutdown()
"""


def test_openllmetry_spans_from_another_process_read_back_as_a_run(server, models, tmp_path):
    """OpenLLMetry's (Traceloop's) OpenAI instrumentor with the plain OpenTelemetry SDK and
    exporter: no tracehouse code in the sending process, only the receiver's normalization."""
    script = tmp_path / "llmetry_app.py"
    script.write_text(OPENLLMETRY_APP)
    models.queue(tool_call("get_weather", city="Oslo"), text("Cold and clear in Oslo"))
    env = {**os.environ, "OTEL_SERVICE_NAME": "llmetry", "TRACELOOP_TRACE_CONTENT": "true"}
    done = subprocess.run(
        [sys.executable, str(script), f"{models.url}/v1", server.http],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    streamed, run_id = done.stdout.strip().splitlines()[-2:]
    assert streamed == "Cold and clear in Oslo"
    item = wait_for_run(server.http, run_id)
    client = tracehouse.Client(server.http)
    logs = client.logs(run_id).model_dump()
    events = client.events(run_id).model_dump()["events"]
    llm = _llm_nodes(logs)
    assert [(n["metadata"]["model"], n["metadata"]["output_tokens"]) for n in llm] == [
        ("gpt-4o-mini", 7),
        ("gpt-4o-mini", 5),
    ]
    assert "Cold and clear in Oslo" in llm[1]["output"] and "Weather in Oslo?" in llm[0]["input"]
    assert ("get_weather", {"city": "Oslo"}) in _tool_calls(events)
    assert item["tokens_used"] == 2 * INPUT_TOKENS + 7 + 5
    expected = cost_usd("gpt-4o-mini", INPUT_TOKENS, 7) + cost_usd("gpt-4o-mini", INPUT_TOKENS, 5)
    assert item["cost_cents"] == pytest.approx(expected * 100, rel=1e-3)


# --- the opentelemetry-instrument route -----------------------------------------------------------

APP = """
import sys, openai, tracehouse
client = openai.OpenAI(base_url=sys.argv[1], api_key="test", max_retries=0)
with tracehouse.run("instrumented-app", input="Hi") as run:
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
print(run.run_id)
"""


def test_opentelemetry_instrument_loads_the_tracehouse_distro(server, models, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(APP)
    instrument = Path(sys.executable).with_name("opentelemetry-instrument")
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": server.http, "OTEL_SERVICE_NAME": "instrumented"}
    models.queue(text("Hello there"))
    done = subprocess.run(
        [str(instrument), sys.executable, str(script), f"{models.url}/v1"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip().splitlines()[-1]
    item = wait_for_run(server.http, run_id)
    logs = tracehouse.Client(server.http).logs(run_id)
    (llm,) = [n for n in logs.nodes if n.type == "llm"]
    assert llm.metadata["model"] == "gpt-4o-mini" and "Hello there" in llm.output
    assert item["tokens_used"] == INPUT_TOKENS + 2

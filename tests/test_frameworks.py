"""Auto-instrumentation: the real SDKs and frameworks, from PyPI, against a fake model server on
127.0.0.1 (``fake_models``), exporting over OTLP to a real ``tracehouse serve``; each test reads
the stored run back through the HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import warnings

import pytest
import serve_helpers
from fake_models import INPUT_TOKENS, FakeModels, error, text, tool_call
from test_api_agents import wait_for_run

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
        error(500),
    )
    messages = [{"role": "user", "content": "Weather in Paris?"}]
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
    ]
    assert [n["status"] for n in llm] == ["success"] * 4 + ["failed"]
    assert "500" in llm[-1]["error_message"] and llm[-1]["metadata"]["error_type"]
    done = llm[:4]
    assert [n["metadata"]["input_tokens"] for n in done] == [INPUT_TOKENS] * 4
    assert [n["metadata"]["output_tokens"] for n in done] == [7, 6, 5, 3]
    expected = sum(cost_usd(n["metadata"]["model"], INPUT_TOKENS, n["metadata"]["output_tokens"]) for n in done)
    assert expected > 0 and item["cost_cents"] == pytest.approx(expected * 100, rel=1e-3)
    assert item["tokens_used"] == 4 * INPUT_TOKENS + 7 + 6 + 5 + 3
    # Streams are assembled when they end; the prompt and the answer are the node's input and output.
    assert "It is sunny in Paris today" in done[1]["output"] and "Weather in Paris?" in done[1]["input"]
    assert "Hello from the Responses API" in done[2]["output"] and "Say hello" in done[2]["input"]
    assert any(e["role"] == "system" and "Be brief" in e["content"] for e in events)  # the instructions
    assert "streamed Responses answer" in done[3]["output"]
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
    model = "claude-sonnet-4-5"
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

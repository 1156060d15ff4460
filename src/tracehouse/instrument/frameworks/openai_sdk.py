"""OpenAI Python SDK: chat completions and the Responses API, sync and async, streaming.

Chat completions go through the official ``opentelemetry-instrumentation-openai-v2``, switched
to the latest GenAI conventions so that prompts and answers are span attributes
(``gen_ai.input.messages`` / ``gen_ai.output.messages``) when content capture is on; it records
tokens, tool calls, and streams (assembled when they end, with the time to the first chunk).
It does not cover the Responses API: :class:`OpenAIResponsesInstrumentor` does, with the same
span shape as ``tracehouse.llm_call`` (it is built on it).
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import Mapping
from typing import Any

from tracehouse import semconv
from tracehouse.instrument import api
from tracehouse.instrument.capture import Capture
from tracehouse.instrument.frameworks import Integration

_WRAPPED = "__tracehouse_wrapped__"


def enable(capture: Capture) -> None:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    opt_in = [v.strip() for v in os.environ.get(semconv.ENV_SEMCONV_STABILITY_OPT_IN, "").split(",") if v.strip()]
    if semconv.SEMCONV_GEN_AI_LATEST not in opt_in:
        os.environ[semconv.ENV_SEMCONV_STABILITY_OPT_IN] = ",".join([*opt_in, semconv.SEMCONV_GEN_AI_LATEST])
    os.environ[semconv.ENV_CAPTURE_MESSAGE_CONTENT] = (
        semconv.CAPTURE_MODE_SPAN_ONLY if capture.content else semconv.CAPTURE_MODE_NO_CONTENT
    )
    OpenAIInstrumentor().instrument()
    OpenAIResponsesInstrumentor().instrument()


INTEGRATION = Integration(name="openai", library="openai", supported=((1, 66), (4,)), enable=enable)


# --- the Responses API ----------------------------------------------------------------------------


def _plain(item: Any) -> Any:
    """SDK objects (pydantic models) as plain dicts; anything else unchanged."""
    dump = getattr(item, "model_dump", None)
    return dump(exclude_none=True) if callable(dump) else item


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(_plain(block).get("text", "")) for block in content if isinstance(_plain(block), Mapping))
    return "" if content is None else str(content)


def _input_messages(value: Any) -> list[dict]:
    """The ``input`` of a Responses request as chat messages: text, messages, earlier function
    calls and their outputs."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    messages: list[dict] = []
    for raw in value:
        item = _plain(raw)
        kind = item.get("type", "message")
        if kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item.get("call_id", ""), "content": item.get("output")})
        elif kind == "function_call":
            call = {
                "id": item.get("call_id", ""),
                "function": {"name": item.get("name", ""), "arguments": item.get("arguments")},
            }
            messages.append({"role": "assistant", "tool_calls": [call]})
        elif kind == "message":
            messages.append({"role": item.get("role", "user"), "content": _text(item.get("content"))})
    return messages


def _output(response: Any) -> tuple[list[dict], str]:
    """The answer as one assistant message (text and tool calls), and its finish reason."""
    text, calls = [], []
    for raw in getattr(response, "output", None) or []:
        item = _plain(raw)
        if item.get("type") == "message":
            text.append(_text(item.get("content")))
        elif item.get("type") == "function_call":
            calls.append(
                {
                    "id": item.get("call_id", ""),
                    "function": {"name": item.get("name", ""), "arguments": item.get("arguments")},
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text)}
    if calls:
        message["tool_calls"] = calls
    return [message], "tool_calls" if calls else "stop"


def _record(handle: api.LLMCallHandle, response: Any) -> list[dict]:
    """Record a response on its call; returns its answer as chat messages."""
    messages, finish = _output(response)
    usage = getattr(response, "usage", None)
    input_details = getattr(usage, "input_tokens_details", None)
    output_details = getattr(usage, "output_tokens_details", None)
    handle.record_response(
        messages,
        finish_reasons=[finish],
        response_id=getattr(response, "id", None),
        response_model=getattr(response, "model", None),
        input_tokens=getattr(usage, "input_tokens", None),
        output_tokens=getattr(usage, "output_tokens", None),
        cache_read_tokens=getattr(input_details, "cached_tokens", None),
        reasoning_tokens=getattr(output_details, "reasoning_tokens", None),
    )
    return messages


def _scope(kwargs: dict[str, Any]) -> Any:
    # Only values given: the SDK's "not given" sentinels (``omit``, ``NOT_GIVEN``) are not numbers.
    params: dict[str, Any] = {
        name: kwargs[key]
        for name, key in (("temperature", "temperature"), ("top_p", "top_p"), ("max_tokens", "max_output_tokens"))
        if isinstance(kwargs.get(key), int | float) and not isinstance(kwargs.get(key), bool)
    }
    if kwargs.get("stream") is True:
        params["stream"] = True
    instructions = kwargs.get("instructions")
    return api.llm_call(
        str(kwargs.get("model", "")),
        semconv.PROVIDER_OPENAI,
        _input_messages(kwargs.get("input")),
        system=instructions if isinstance(instructions, str) else None,
        **params,
    )


_FINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")


class _Stream:
    """A Responses event stream that records the call when the stream ends (completed, closed
    early, or failed), with the time to its first event."""

    def __init__(self, stream: Any, span: Any, handle: api.LLMCallHandle, started: float):
        self._stream, self._span, self._handle, self._started = stream, span, handle, started
        self._first = True
        self._done = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _seen(self, event: Any) -> None:
        if self._first:
            self._first = False
            self._span.set_attribute(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, time.monotonic() - self._started)
        if getattr(event, "type", "") in _FINAL_EVENTS and getattr(event, "response", None) is not None:
            _record(self._handle, event.response)

    def _finish(self, error: BaseException | None = None) -> None:
        if not self._done:
            self._done = True
            self._handle.end(error)

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> Any:
        try:
            event = next(self._stream)
        except StopIteration:
            self._finish()
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        self._seen(event)
        return event

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> Any:
        self._finish()
        return self._stream.close()  # an async stream's close() is awaited by its caller

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> Any:
        try:
            event = await self._stream.__anext__()
        except StopAsyncIteration:
            self._finish()
            raise
        except BaseException as exc:
            self._finish(exc)
            raise
        self._seen(event)
        return event

    async def __aenter__(self) -> _Stream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._finish()
        await self._stream.close()


class _Raw:
    """A raw response (``with_raw_response``, ``with_streaming_response``): the call is recorded
    when the response is parsed into the answer or the event stream."""

    def __init__(self, raw: Any, call: _Call):
        self._raw, self._call = raw, call
        self._parsed: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def _once(self, parsed: Any) -> Any:
        if not self._parsed:
            self._parsed.append(self._call.parsed(parsed))
        return self._parsed[0]

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        parsed = self._raw.parse(*args, **kwargs)
        if inspect.isawaitable(parsed):  # the async client's

            async def parse_async() -> Any:
                return self._once(await parsed)

            return parse_async()
        return self._once(parsed)


class _Call:
    """One ``create`` call: its span opens before the request and closes with the answer, or,
    for a stream, when the stream ends."""

    def __init__(self, kwargs: dict[str, Any]):
        self.stream = kwargs.get("stream") is True
        self.span, self.ctx, self.handle = _scope(kwargs).start()
        self.started = time.monotonic()

    def failed(self, error: BaseException) -> None:
        self.handle.end(error)

    def returned(self, result: Any) -> Any:
        if hasattr(result, "http_response") and callable(getattr(result, "parse", None)):
            return _Raw(result, self)
        return self.parsed(result)

    def parsed(self, result: Any) -> Any:
        if self.stream:
            return _Stream(result, self.span, self.handle, self.started)
        try:
            _record(self.handle, result)
        finally:
            self.handle.end()
        return result


def _wrap_sync(original: Any) -> Any:
    @functools.wraps(original)
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _Call(kwargs)
        try:
            with api.attached(call.ctx):
                result = original(self, *args, **kwargs)
        except BaseException as exc:
            call.failed(exc)
            raise
        return call.returned(result)

    setattr(create, _WRAPPED, original)
    return create


def _wrap_async(original: Any) -> Any:
    @functools.wraps(original)
    async def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _Call(kwargs)
        try:
            with api.attached(call.ctx):
                result = await original(self, *args, **kwargs)
        except BaseException as exc:
            call.failed(exc)
            raise
        return call.returned(result)

    setattr(create, _WRAPPED, original)
    return create


try:
    from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
except ImportError:  # the openai extra is not installed: auto() says so
    BaseInstrumentor = object  # type: ignore[assignment,misc]


class OpenAIResponsesInstrumentor(BaseInstrumentor):  # type: ignore[misc,valid-type]
    """The Responses API (``client.responses.create``, sync and async, ``stream=True``) as
    ``chat {model}`` spans. Also an ``opentelemetry_instrumentor`` entry point."""

    def instrumentation_dependencies(self) -> tuple[str, ...]:
        return ("openai >= 1.66",)

    def _instrument(self, **kwargs: Any) -> None:
        from openai.resources import responses

        for cls, wrap in ((responses.Responses, _wrap_sync), (responses.AsyncResponses, _wrap_async)):
            if not hasattr(cls.create, _WRAPPED):
                cls.create = wrap(cls.create)

    def _uninstrument(self, **kwargs: Any) -> None:
        from openai.resources import responses

        for cls in (responses.Responses, responses.AsyncResponses):
            original = getattr(cls.create, _WRAPPED, None)
            if original is not None:
                cls.create = original

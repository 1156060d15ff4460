"""A fake model server on 127.0.0.1 that speaks the providers' HTTP APIs, for the framework tests.

The real SDKs (openai, anthropic, and the frameworks on top of them) talk to it instead of the
providers: OpenAI chat completions and Responses (``/v1/chat/completions``, ``/v1/responses``)
and Anthropic messages (``/v1/messages``), each plain or streamed as server-sent events. A test
queues the turns the "model" answers, in order: text, or a tool call, or an error status.
Requests are kept for assertions. No network beyond loopback.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INPUT_TOKENS = 42  # what every answer reports as its prompt size
_ids = itertools.count(1)


@dataclass
class Turn:
    """One answer of the model: text, or a call of a tool with JSON arguments, or an error."""

    text: str = ""
    tool: str = ""
    arguments: dict | None = None
    status: int = 200

    @property
    def output_tokens(self) -> int:
        return max(1, len(self.text.split())) if not self.tool else 7


def text(value: str) -> Turn:
    return Turn(text=value)


def tool_call(name: str, **arguments: Any) -> Turn:
    return Turn(tool=name, arguments=arguments)


def error(status: int) -> Turn:
    return Turn(status=status)


class FakeModels:
    def __init__(self) -> None:
        self.turns: deque[Turn] = deque()
        self.requests: list[tuple[str, dict]] = []
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def queue(self, *turns: Turn) -> None:
        self.turns.extend(turns)

    def next_turn(self) -> Turn:
        return self.turns.popleft() if self.turns else Turn(text="(no turn queued)")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _words(value: str) -> list[str]:
    words = value.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


# --- OpenAI chat completions -----------------------------------------------------------------


def _chat(turn: Turn, model: str) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
    if turn.tool:
        message["tool_calls"] = [
            {"id": f"call_{next(_ids)}", "type": "function",
             "function": {"name": turn.tool, "arguments": json.dumps(turn.arguments)}}
        ]  # fmt: skip
    return {
        "id": f"chatcmpl-{next(_ids)}", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if turn.tool else "stop"}],
        "usage": {"prompt_tokens": INPUT_TOKENS, "completion_tokens": turn.output_tokens,
                  "total_tokens": INPUT_TOKENS + turn.output_tokens},
    }  # fmt: skip


def _chat_chunks(turn: Turn, model: str) -> list[dict]:
    base = {"id": f"chatcmpl-{next(_ids)}", "object": "chat.completion.chunk", "created": 1, "model": model}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    if turn.tool:
        call = {"index": 0, "id": f"call_{next(_ids)}", "type": "function",
                "function": {"name": turn.tool, "arguments": json.dumps(turn.arguments)}}  # fmt: skip
        chunks.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
    for word in _words(turn.text) if turn.text else []:
        chunks.append({**base, "choices": [{"index": 0, "delta": {"content": word}}]})
    finish = "tool_calls" if turn.tool else "stop"
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    usage = {"prompt_tokens": INPUT_TOKENS, "completion_tokens": turn.output_tokens,
             "total_tokens": INPUT_TOKENS + turn.output_tokens}  # fmt: skip
    chunks.append({**base, "choices": [], "usage": usage})
    return chunks


# --- OpenAI Responses ------------------------------------------------------------------------


def _response(turn: Turn, model: str) -> dict:
    if turn.tool:
        output = [{"type": "function_call", "id": f"fc_{next(_ids)}", "call_id": f"call_{next(_ids)}",
                   "name": turn.tool, "arguments": json.dumps(turn.arguments), "status": "completed"}]  # fmt: skip
    else:
        output = [{"type": "message", "id": f"msg_{next(_ids)}", "role": "assistant", "status": "completed",
                   "content": [{"type": "output_text", "text": turn.text, "annotations": []}]}]  # fmt: skip
    return {
        "id": f"resp_{next(_ids)}", "object": "response", "created_at": 1, "model": model, "status": "completed",
        "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": turn.output_tokens,
                  "total_tokens": INPUT_TOKENS + turn.output_tokens,
                  "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}},
    }  # fmt: skip


def _response_events(turn: Turn, model: str) -> list[dict]:
    final = _response(turn, model)
    started = {**final, "status": "in_progress", "output": [], "usage": None}
    events: list[dict] = [{"type": "response.created", "sequence_number": 0, "response": started}]
    item = final["output"][0]
    if not turn.tool:
        for word in _words(turn.text):
            events.append({"type": "response.output_text.delta", "item_id": item["id"], "output_index": 0,
                           "content_index": 0, "delta": word, "logprobs": []})  # fmt: skip
    events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    events.append({"type": "response.completed", "response": final})
    for i, event in enumerate(events):
        event["sequence_number"] = i
    return events


# --- Anthropic messages ----------------------------------------------------------------------


def _message(turn: Turn, model: str) -> dict:
    if turn.tool:
        content = [{"type": "tool_use", "id": f"toolu_{next(_ids)}", "name": turn.tool, "input": turn.arguments}]
    else:
        content = [{"type": "text", "text": turn.text}]
    return {
        "id": f"msg_{next(_ids)}", "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": "tool_use" if turn.tool else "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": turn.output_tokens,
                  "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
    }  # fmt: skip


def _message_events(turn: Turn, model: str) -> list[tuple[str, dict]]:
    final = _message(turn, model)
    start = {**final, "content": [], "stop_reason": None, "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1}}
    events = [("message_start", {"type": "message_start", "message": start})]
    block = final["content"][0]
    if turn.tool:
        events.append(("content_block_start", {"type": "content_block_start", "index": 0,
                                               "content_block": {**block, "input": {}}}))  # fmt: skip
        delta = {"type": "input_json_delta", "partial_json": json.dumps(turn.arguments)}
        events.append(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
    else:
        events.append(("content_block_start", {"type": "content_block_start", "index": 0,
                                               "content_block": {"type": "text", "text": ""}}))  # fmt: skip
        for word in _words(turn.text):
            delta = {"type": "text_delta", "text": word}
            events.append(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": final["stop_reason"], "stop_sequence": None},
                                     "usage": {"output_tokens": turn.output_tokens}}))  # fmt: skip
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _handler(models: FakeModels) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _json(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _sse(self, events: list[tuple[str | None, dict]], done: bool) -> None:
            body = b"".join(
                (f"event: {name}\n" if name else "").encode() + f"data: {json.dumps(data)}\n\n".encode()
                for name, data in events
            )
            if done:
                body += b"data: [DONE]\n\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            path = self.path.split("?")[0]
            models.requests.append((path, request))
            turn = models.next_turn()
            model = request.get("model", "")
            stream = bool(request.get("stream"))
            if turn.status != 200:
                kind = "overloaded_error" if path.endswith("/messages") else "server_error"
                body = {"error": {"type": kind, "message": f"fake failure {turn.status}", "code": None}}
                if path.endswith("/messages"):
                    body["type"] = "error"
                self._json(turn.status, body)
            elif path.endswith("/chat/completions"):
                if stream:
                    self._sse([(None, c) for c in _chat_chunks(turn, model)], done=True)
                else:
                    self._json(200, _chat(turn, model))
            elif path.endswith("/responses"):
                if stream:
                    self._sse([(e["type"], e) for e in _response_events(turn, model)], done=False)
                else:
                    self._json(200, _response(turn, model))
            elif path.endswith("/messages"):
                if stream:
                    self._sse(_message_events(turn, model), done=False)
                else:
                    self._json(200, _message(turn, model))
            else:
                self._json(404, {"error": {"message": f"no route {path}"}})

    return Handler

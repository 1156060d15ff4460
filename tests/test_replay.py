"""Replay logic on its own: order, tool-call dedup, transcript, OpenAI messages, resume points."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracehouse.model import Event, EventKind
from tracehouse.replay import Mode, openai_messages, replay, resume_point

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def ev(ms: int, kind: EventKind, span: str = "a" * 16, seq: int = 0, **fields) -> Event:
    return Event(
        run_id="r",
        trace_id="t" * 32,
        span_id=span,
        seq=seq,
        timestamp=T0 + timedelta(milliseconds=ms),
        kind=kind,
        **fields,
    )


EVENTS = [
    ev(5, EventKind.TOOL_CALL, "b" * 16, name="search", tool_call_id="c1", content='{"q": 1}'),  # the tool span's
    ev(0, EventKind.MESSAGE, role="user", content="hi"),
    ev(4, EventKind.TOOL_CALL, seq=1, role="assistant", name="search", tool_call_id="c1", content='{"q": 1}'),
    ev(4, EventKind.REASONING, seq=0, role="assistant", content="thinking"),
    ev(6, EventKind.TOOL_RESULT, "b" * 16, seq=1, name="search", tool_call_id="c1", content="found"),
    ev(7, EventKind.CHECKPOINT, "c" * 16, name="cp1", content='{"s": 1}'),
    ev(8, EventKind.TOOL_RESULT, "d" * 16, role="tool", tool_call_id="c1", content="found"),  # next call's input
    ev(9, EventKind.MESSAGE, "d" * 16, seq=1, role="assistant", content="done"),
    ev(10, EventKind.CHECKPOINT, "e" * 16, name="cp2", content='{"s": 2}'),
]


def test_replay_orders_and_keeps_each_tool_call_once():
    kinds = [(e.kind.value, e.content) for e in replay(EVENTS)]
    assert kinds == [
        ("message", "hi"),
        ("reasoning", "thinking"),
        ("tool_call", '{"q": 1}'),
        ("tool_result", "found"),
        ("checkpoint", '{"s": 1}'),
        ("message", "done"),
        ("checkpoint", '{"s": 2}'),
    ]
    assert [e.content for e in replay(EVENTS, Mode.TRANSCRIPT)] == ["hi", "done"]
    assert replay(list(reversed(EVENTS))) == replay(EVENTS)  # the input order does not matter


def test_openai_messages_group_tool_calls_into_the_assistant_turn():
    two_calls = [
        ev(0, EventKind.TOOL_CALL, seq=0, name="a", tool_call_id="x", content="{}"),
        ev(0, EventKind.TOOL_CALL, seq=1, name="b", tool_call_id="y", content="{}"),
    ]
    messages = openai_messages(replay(two_calls))
    assert messages == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "x", "type": "function", "function": {"name": "a", "arguments": "{}"}},
                {"id": "y", "type": "function", "function": {"name": "b", "arguments": "{}"}},
            ],
        }
    ]


def test_resume_points():
    kept, checkpoint = resume_point(EVENTS, until_checkpoint="cp1")
    assert kept[-1].name == "cp1" and checkpoint.name == "cp1"
    assert [m["role"] for m in openai_messages(kept)] == ["user", "assistant", "tool"]
    kept, checkpoint = resume_point(EVENTS)
    assert checkpoint.name == "cp2" and openai_messages(kept)[-1] == {"role": "assistant", "content": "done"}
    kept, _ = resume_point(EVENTS, until_span="b" * 16)
    assert kept[-1].kind is EventKind.TOOL_RESULT
    with pytest.raises(KeyError):
        resume_point(EVENTS, until_checkpoint="missing")
    with pytest.raises(KeyError):
        resume_point(EVENTS, until_span="f" * 16)

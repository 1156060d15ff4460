"""Replay: a run's or a conversation's events as a transcript, and the messages to resume from.

The events table holds each run's ordered items (see ``ingest/normalize.py``): messages, tool
calls and results, reasoning, approvals, checkpoints, custom events. A tool call is recorded
both by the model's answer that asked for it and by the tool span that ran it; replay keeps the
first of the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

from tracehouse.model import Event, EventKind


class Mode(StrEnum):
    FULL = "full"  # every event
    TRANSCRIPT = "transcript"  # messages only


def replay(events: Iterable[Event], mode: Mode = Mode.FULL) -> list[Event]:
    """Events in replay order (time, then span, then sequence), each tool call once."""
    ordered = sorted(events, key=lambda e: (e.timestamp, e.span_id, e.seq))
    seen_calls: set[tuple[str, str]] = set()
    out = []
    for event in ordered:
        if event.kind in (EventKind.TOOL_CALL, EventKind.TOOL_RESULT) and event.tool_call_id:
            key = (event.kind.value, event.tool_call_id)
            if key in seen_calls:
                continue
            seen_calls.add(key)
        if mode is Mode.TRANSCRIPT and event.kind is not EventKind.MESSAGE:
            continue
        out.append(event)
    return out


def openai_messages(events: Sequence[Event]) -> list[dict[str, Any]]:
    """Replayed events as OpenAI chat messages: what an agent is given to carry on."""
    messages: list[dict[str, Any]] = []
    for event in events:
        if event.kind is EventKind.MESSAGE:
            messages.append({"role": event.role or "user", "content": event.content})
        elif event.kind is EventKind.TOOL_CALL:
            # OpenAI carries a call's arguments as a JSON string, which is how they are stored.
            call = {
                "id": event.tool_call_id,
                "type": "function",
                "function": {"name": event.name, "arguments": event.content},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and not last.get("content"):
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif event.kind is EventKind.TOOL_RESULT:
            messages.append({"role": "tool", "tool_call_id": event.tool_call_id, "content": event.content})
    return messages


def resume_point(
    events: Sequence[Event], until_span: str | None = None, until_checkpoint: str | None = None
) -> tuple[list[Event], Event | None]:
    """The replayed events up to (and including) a node or a checkpoint, and the latest
    checkpoint among them. With neither, the whole run."""
    ordered = replay(events)
    cut = len(ordered)
    if until_checkpoint is not None:
        matches = [i for i, e in enumerate(ordered) if e.kind is EventKind.CHECKPOINT and e.name == until_checkpoint]
        if not matches:
            raise KeyError(f"checkpoint {until_checkpoint} not found")
        cut = matches[-1] + 1
    elif until_span is not None:
        matches = [i for i, e in enumerate(ordered) if e.span_id == until_span]
        if not matches:
            raise KeyError(f"node {until_span} has no events")
        cut = matches[-1] + 1
    kept = ordered[:cut]
    checkpoint = next((e for e in reversed(kept) if e.kind is EventKind.CHECKPOINT), None)
    return kept, checkpoint

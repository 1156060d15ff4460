"""The canonical model: validation at the edges, enums and helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from tracehouse.ingest.normalize import attribute_string
from tracehouse.model import Event, EventKind, Node, NodeType, Run, Status, Usage

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _node(**fields) -> Node:
    return Node(**{"trace_id": "ab" * 16, "span_id": "cd" * 8, "name": "n", "started_at": T0, **fields})


def test_enums_have_the_documented_members():
    assert [s.value for s in Status] == ["pending", "running", "completed", "failed", "cancelled", "incomplete"]
    assert {t.value for t in NodeType} == {
        "agent", "llm", "tool", "retriever", "embedding", "step", "guardrail", "evaluator", "other",
    }  # fmt: skip
    assert {k.value for k in EventKind} == {
        "message", "tool_call", "tool_result", "reasoning", "approval", "checkpoint", "custom",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("LLM", NodeType.LLM), ("chain", NodeType.STEP), ("CHAIN", NodeType.STEP), ("generation", NodeType.LLM),
     ("execute_tool", NodeType.TOOL), ("", NodeType.OTHER), (None, NodeType.OTHER), ("reranker", NodeType.OTHER)],
)  # fmt: skip
def test_node_type_parse_is_lenient(raw, expected):
    assert NodeType.parse(raw) is expected


@pytest.mark.parametrize(
    "fields",
    [{"trace_id": "xyz"}, {"trace_id": "AB" * 16}, {"span_id": "12"}, {"parent_span_id": "1234"},
     {"ttl_days": 0}, {"ttl_days": 10_000}, {"cost_usd": -1.0}, {"duration_ns": -5}, {"unknown": 1}],
)  # fmt: skip
def test_node_rejects_bad_values(fields):
    with pytest.raises(ValidationError):
        _node(**fields)


def test_times_are_utc_whatever_came_in():
    naive = _node(started_at=datetime(2026, 3, 1, 12, 0))
    assert naive.started_at == T0 and naive.started_at.tzinfo is UTC
    plus_two = _node(started_at=datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    assert plus_two.started_at == T0
    assert _node(duration_ns=2_500_000_000).ended_at == T0 + timedelta(seconds=2.5)


def test_usage_adds_and_totals():
    total = Usage(input_tokens=10, output_tokens=5, reasoning_tokens=2) + Usage(input_tokens=1, cache_read_tokens=3)
    assert total == Usage(input_tokens=11, output_tokens=5, cache_read_tokens=3, reasoning_tokens=2)
    assert total.total_tokens == 16


def test_run_and_event_models():
    run = Run(run_id="r1", started_at=T0, status=Status.FAILED)
    assert run.ended_at is None and run.usage.total_tokens == 0
    event = Event(run_id="r1", trace_id="ab" * 16, span_id="cd" * 8, timestamp=T0, kind=EventKind.MESSAGE, role="user")
    assert event.seq == 0
    with pytest.raises(ValidationError):
        Event(run_id="r1", trace_id="ab" * 16, span_id="cd" * 8, timestamp=T0, kind="telepathy")


def test_attributes_are_coerced_to_strings_like_the_collector_does():
    values = {"s": "x", "i": 3, "f": 0.5, "b": False, "l": [1, "a"], "d": {"k": 1}}
    assert {key: attribute_string(value) for key, value in values.items()} == {
        "s": "x", "i": "3", "f": "0.5", "b": "false", "l": '[1,"a"]', "d": '{"k":1}',
    }  # fmt: skip

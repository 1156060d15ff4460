"""The conventions' rules, written once (tracehouse.conventions), give the same value evaluated
in Python and compiled into the engine's SQL (tracehouse.ingest.engine_rules), for spans that
mix every convention's attributes, odd values included; the spans reach the engine as bound
parameters, never as SQL text."""

from __future__ import annotations

import random

import pytest

from tracehouse import conventions as c
from tracehouse import semconv
from tracehouse.ingest.engine_rules import compile_rule
from tracehouse.model import NodeType
from tracehouse.store import Store  # the `store` fixture: tests/conftest.py

RULES = {
    "node type": c.NODE_TYPE,
    "operation": c.OPERATION,
    "agent": c.AGENT,
    "model": c.MODEL,
    "provider": c.PROVIDER,
    "conversation": c.CONVERSATION,
    "user": c.USER,
    "tool name": c.TOOL_NAME,
    "tool call id": c.TOOL_CALL_ID,
    "status": c.STATUS,
    **{name: rule for name, rule in c.TOKENS.items()},
}

KEYS = sorted(
    {
        semconv.TRACEHOUSE_NODE_TYPE,
        semconv.GEN_AI_OPERATION_NAME,
        semconv.OPENINFERENCE_SPAN_KIND,
        semconv.LLM_REQUEST_TYPE,
        semconv.TRACELOOP_SPAN_KIND,
        semconv.LANGFUSE_OBSERVATION_TYPE,
        semconv.GEN_AI_REQUEST_MODEL,
        semconv.GEN_AI_SYSTEM,
        semconv.TRACEHOUSE_STATUS,
        semconv.LANGFUSE_OBSERVATION_LEVEL,
        *c.AGENT_KEYS,
        *c.AGENT_NODE_KEYS,
        *c.RUN_NAME_KEYS,
        *c.MODEL_KEYS,
        *c.PROVIDER_KEYS,
        *c.CONVERSATION_KEYS,
        *c.USER_KEYS,
        *c.TOOL_NAME_KEYS,
        *c.TOOL_CALL_ID_KEYS,
        *(k for keys in c.TOKEN_KEYS.values() for k in keys),
    }
)
VALUES = [
    "",
    "x",
    " Chain ",
    "chat",
    "execute_tool",
    "invoke_agent",
    "embeddings",
    "LLM",
    "tool",
    "agent",
    "embedding",
    "generation",
    "workflow",
    "ERROR",
    "cancelled",
    "12",
    "-3",
    "7.9",
    "1e13",
    "nan",
    "inf",
    "abc",
    "it's {x} \\ '); DROP TABLE t; --",
]
NAMES = ["", "plain", "invoke_agent planner", "invoke_agent ", "execute_tool lookup", " padded "]


def spans(count: int) -> list[tuple[dict[str, str], dict[str, str], dict]]:
    rng = random.Random(7)
    made = []
    for _ in range(count):
        attrs = {k: rng.choice(VALUES) for k in rng.sample(KEYS, rng.randint(0, 6))}
        resource = {k: rng.choice(VALUES) for k in rng.sample(KEYS, rng.randint(0, 2))}
        fields = {
            "name": rng.choice(NAMES),
            "status_code": rng.choice([0, 1, 2]),
            "type": rng.choice([t.value for t in NodeType]),
            "run_root": rng.random() < 0.5,
        }
        made.append((attrs, resource, fields))
    return made


def engine_values(store: Store, expr: str, cases: list) -> list:
    params = {
        "K": [list(a) for a, _, _ in cases],
        "V": [list(a.values()) for a, _, _ in cases],
        "RK": [list(r) for _, r, _ in cases],
        "RV": [list(r.values()) for _, r, _ in cases],
        "N": [f["name"] for _, _, f in cases],
        "S": [f["status_code"] for _, _, f in cases],
        "T": [f["type"] for _, _, f in cases],
        "R": [f["run_root"] for _, _, f in cases],
    }
    sql = f"""
        SELECT {expr} FROM (
            SELECT i,
                   mapFromArrays({{K:Array(Array(String))}}[i], {{V:Array(Array(String))}}[i]) AS attrs,
                   mapFromArrays({{RK:Array(Array(String))}}[i], {{RV:Array(Array(String))}}[i]) AS res,
                   {{N:Array(String)}}[i] AS name, {{S:Array(Int32)}}[i] AS status_code,
                   {{T:Array(String)}}[i] AS NodeType, {{R:Array(Bool)}}[i] AS RunRoot
            FROM (SELECT arrayJoin(range(1, length({{N:Array(String)}}) + 1)) AS i)
        ) ORDER BY i
    """
    return [row[0] for row in store.query(sql, params)]


@pytest.mark.parametrize("name", list(RULES))
def test_a_rule_gives_the_same_value_in_python_and_in_the_engine(store, name):
    rule = RULES[name]
    cases = spans(400)
    read = rule.python()
    expected = [read(attrs, {**resource, **attrs}, fields) for attrs, resource, fields in cases]
    got = engine_values(store, compile_rule(rule), cases)
    differ = [(case, e, g) for case, e, g in zip(cases, expected, got, strict=True) if e != g]
    assert not differ, f"{len(differ)} of {len(cases)} differ, e.g. {differ[0]}"
    assert len(set(expected)) > 1  # the spans exercise the rule: not one value for all


def test_the_rules_read_every_convention():
    assert c.node_type({semconv.GEN_AI_OPERATION_NAME: "chat"}) is NodeType.LLM
    assert c.node_type({semconv.OPENINFERENCE_SPAN_KIND: "tool"}) is NodeType.TOOL
    assert c.node_type({semconv.TRACELOOP_SPAN_KIND: "workflow"}) is NodeType.STEP
    assert c.node_type({semconv.LANGFUSE_OBSERVATION_TYPE: "GENERATION"}) is NodeType.LLM
    assert c.node_type({semconv.LLM_REQUEST_TYPE: "embedding"}) is NodeType.EMBEDDING
    assert c.node_type({semconv.TRACEHOUSE_NODE_TYPE: " Chain "}) is NodeType.STEP
    assert c.node_type({semconv.GEN_AI_REQUEST_MODEL: "gpt-4o"}) is NodeType.LLM
    assert c.node_type({}) is NodeType.OTHER
    agent = c.AGENT.python()
    root = {"name": "invoke_agent planner", "type": "agent", "run_root": True, "status_code": 0}
    assert agent({}, {}, root) == "planner"
    assert agent({semconv.GEN_AI_AGENT_NAME: "named"}, {}, root) == "named"
    step = {**root, "type": "step", "run_root": False}
    assert agent({}, {}, step) == ""

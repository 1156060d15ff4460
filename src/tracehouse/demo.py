"""Sample agent runs in canonical form: the demo's data, and realistic fixtures for tests.

A run of the ``trip-planner`` agent plans, calls tools (one of which times out and is
retried), hands a budget check to a ``budget-checker`` sub-agent, critiques and answers. Every
value is derived from a seed, so the same seed gives the same runs.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tracehouse import semconv
from tracehouse.model import (
    DEFAULT_TENANT,
    Event,
    EventKind,
    Node,
    NodeType,
    SpanEvent,
    Status,
    Usage,
)

# Demo prices in USD per million tokens (input, output); the real table is tracehouse's pricing.
_DEMO_PRICES = {"gpt-4o-mini": (0.15, 0.60), "claude-sonnet-4": (3.0, 15.0)}
_MS = 1_000_000  # nanoseconds in a millisecond


@dataclass
class SampleRun:
    nodes: list[Node] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return next(n.run_id for n in self.nodes if n.run_root)


@dataclass
class _Builder:
    """Accumulates the spans and events of one trace."""

    rng: random.Random
    tenant: str
    trace_id: str
    started_at: datetime
    user_id: str
    conversation_id: str
    ttl_days: int
    out: SampleRun = field(default_factory=SampleRun)
    seq: dict[str, int] = field(default_factory=dict)

    def span_id(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def at(self, offset_ms: int) -> datetime:
        return self.started_at + timedelta(milliseconds=offset_ms)

    def node(self, run_id: str, parent: str, name: str, start_ms: int, dur_ms: int, **fields) -> Node:
        node = Node(
            tenant=self.tenant,
            trace_id=self.trace_id,
            span_id=self.span_id(),
            parent_span_id=parent,
            name=name,
            service_name="trip-planner-service",
            scope_name="tracehouse.demo",
            started_at=self.at(start_ms),
            duration_ns=dur_ms * _MS,
            run_id=run_id,
            user_id=self.user_id,
            conversation_id=self.conversation_id,
            ttl_days=self.ttl_days,
            payload_ttl_days=self.ttl_days,
            **fields,
        )
        if node.status is Status.FAILED:
            node.otel_status_code = "Error"
        self.out.nodes.append(node)
        return node

    def event(self, node: Node, kind: EventKind, offset_ms: int, **fields) -> None:
        seq = self.seq.get(node.span_id, 0)
        self.seq[node.span_id] = seq + 1
        self.out.events.append(
            Event(
                tenant=self.tenant,
                run_id=node.run_id,
                conversation_id=self.conversation_id,
                trace_id=self.trace_id,
                span_id=node.span_id,
                seq=seq,
                timestamp=self.at(offset_ms),
                kind=kind,
                ttl_days=self.ttl_days,
                payload_ttl_days=self.ttl_days,
                **fields,
            )
        )

    def llm(self, run_id: str, parent: str, model: str, start_ms: int, prompt: str, answer: str) -> Node:
        usage = Usage(
            input_tokens=self.rng.randint(200, 1200),
            output_tokens=self.rng.randint(50, 400),
            cache_read_tokens=self.rng.choice([0, 0, 128]),
        )
        price_in, price_out = _DEMO_PRICES[model]
        cost = (usage.input_tokens * price_in + usage.output_tokens * price_out) / 1e6
        dur = self.rng.randint(300, 1400)  # fits inside every parent step below
        provider = "anthropic" if model.startswith("claude") else "openai"
        node = self.node(
            run_id, parent, f"{semconv.OP_CHAT} {model}", start_ms, dur,
            type=NodeType.LLM, operation=semconv.OP_CHAT, model=model, provider=provider, usage=usage,
            cost_usd=cost, span_kind="Client",
            input=json.dumps([{"role": "user", "parts": [{"type": "text", "content": prompt}]}]),
            output=json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": answer}]}]),
            attributes={
                semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
                semconv.GEN_AI_REQUEST_MODEL: model,
                semconv.GEN_AI_PROVIDER_NAME: provider,
                semconv.GEN_AI_USAGE_INPUT_TOKENS: str(usage.input_tokens),
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: str(usage.output_tokens),
            },
        )  # fmt: skip
        self.event(node, EventKind.MESSAGE, start_ms, role="user", content=prompt)
        self.event(node, EventKind.MESSAGE, start_ms + dur, role="assistant", content=answer)
        return node

    def tool(self, run_id: str, parent: str, name: str, start_ms: int, args: dict, result: str | None) -> Node:
        call_id = f"call_{self.rng.getrandbits(32):08x}"
        failed = result is None
        dur = self.rng.randint(80, 900) if not failed else 5000
        node = self.node(
            run_id, parent, f"{semconv.OP_EXECUTE_TOOL} {name}", start_ms, dur,
            type=NodeType.TOOL, operation=semconv.OP_EXECUTE_TOOL,
            status=Status.FAILED if failed else Status.COMPLETED,
            status_message="TimeoutError: upstream did not answer in 5s" if failed else "",
            error_type="TimeoutError" if failed else "",
            input=json.dumps(args), output=result or "",
            attributes={semconv.GEN_AI_TOOL_NAME: name, semconv.GEN_AI_TOOL_CALL_ID: call_id},
            events=[SpanEvent(timestamp=self.at(start_ms + dur), name=semconv.EXCEPTION_EVENT,
                              attributes={semconv.EXCEPTION_TYPE: "TimeoutError"})] if failed else [],
        )  # fmt: skip
        self.event(node, EventKind.TOOL_CALL, start_ms, name=name, tool_call_id=call_id, content=json.dumps(args))
        if not failed:
            self.event(node, EventKind.TOOL_RESULT, start_ms + dur, name=name, tool_call_id=call_id, content=result)
        return node


def sample_run(
    seed: int = 0,
    *,
    started_at: datetime | None = None,
    tenant: str = DEFAULT_TENANT,
    agent: str = "trip-planner",
    user_id: str | None = None,
    fail: bool = False,
    ttl_days: int = 30,
) -> SampleRun:
    """One run of the sample agent (with a sub-agent run inside it)."""
    rng = random.Random(seed)
    started_at = started_at or datetime.now(UTC) - timedelta(minutes=5)
    city = rng.choice(["Lisbon", "Kyoto", "Oaxaca", "Tallinn", "Cape Town"])
    question = f"Plan a 3-day trip to {city} in May for two, under $1500."
    b = _Builder(
        rng=rng, tenant=tenant, trace_id=f"{rng.getrandbits(128):032x}", started_at=started_at,
        user_id=user_id or f"user-{rng.randint(1, 20)}", conversation_id=f"conv-{rng.getrandbits(32):08x}",
        ttl_days=ttl_days,
    )  # fmt: skip
    run_id = f"run-{rng.getrandbits(64):016x}"
    answer = f"Day 1: Old town walk in {city}. Day 2: Museums. Day 3: Food market. Total: $1,380."
    root = b.node(
        run_id, "", f"{semconv.OP_INVOKE_AGENT} {agent}", 0, 14_000,
        run_root=True, type=NodeType.AGENT, operation=semconv.OP_INVOKE_AGENT, agent_name=agent,
        input=question, output="" if fail else answer,
        status=Status.FAILED if fail else Status.COMPLETED,
        status_message="RuntimeError: budget check failed" if fail else "",
        error_type="RuntimeError" if fail else "",
        attributes={semconv.GEN_AI_AGENT_NAME: agent, semconv.TRACEHOUSE_RUN_METADATA + ".plan": "standard"},
    )  # fmt: skip
    b.event(root, EventKind.MESSAGE, 0, role="user", content=question)

    plan = b.node(run_id, root.span_id, "plan", 10, 1_500, type=NodeType.STEP)
    b.llm(run_id, plan.span_id, "gpt-4o-mini", 20, f"Make a plan for: {question}", "1. flights 2. hotel 3. budget")
    b.tool(run_id, root.span_id, "search_flights", 1_600, {"to": city, "month": "May"}, '{"best": "$620"}')
    b.tool(run_id, root.span_id, "search_hotels", 2_400, {"city": city, "nights": 3}, None)
    b.tool(run_id, root.span_id, "search_hotels", 7_500, {"city": city, "nights": 3}, '{"best": "$540"}')
    b.event(root, EventKind.CHECKPOINT, 8_500, name="after-search",
            content=json.dumps({"flights": 620, "hotel": 540}))  # fmt: skip

    sub_run = f"run-{rng.getrandbits(64):016x}"
    checker = b.node(
        sub_run, root.span_id, f"{semconv.OP_INVOKE_AGENT} budget-checker", 8_600, 2_000,
        run_root=True, parent_run_id=run_id, type=NodeType.AGENT, operation=semconv.OP_INVOKE_AGENT,
        agent_name="budget-checker", input="flights $620 + hotel $540 within $1500?",
        output="over budget" if fail else "within budget: $1,160 + $220 food",
        status=Status.FAILED if fail else Status.COMPLETED,
        status_message="RuntimeError: budget check failed" if fail else "",
    )  # fmt: skip
    b.llm(sub_run, checker.span_id, "gpt-4o-mini", 8_650, "Is $1160 + food within $1500?", "Yes, $220 left.")
    if not fail:
        critique = b.node(run_id, root.span_id, "critique", 10_700, 1_800, type=NodeType.STEP)
        b.llm(run_id, critique.span_id, "claude-sonnet-4", 10_720, "Critique this plan.", "Add a rain day option.")
        b.llm(run_id, root.span_id, "gpt-4o-mini", 12_600, "Write the final answer.", answer)
    return b.out


def sample_runs(count: int, *, seed: int = 0, days: int = 7, tenant: str = DEFAULT_TENANT) -> list[SampleRun]:
    """``count`` runs spread over the last ``days`` days; about one in eight fails."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    runs = []
    for i in range(count):
        started = now - timedelta(seconds=rng.uniform(60, days * 86_400))
        agent = rng.choice(["trip-planner", "trip-planner", "support-bot"])
        runs.append(sample_run(seed * 1_000_003 + i, started_at=started, tenant=tenant, agent=agent,
                               fail=rng.random() < 0.125))  # fmt: skip
    return runs

"""The words every layer shares: statuses, node types, event kinds and the limits on values.

Plain enums and constants, without pydantic: the recording side (``tracehouse.instrument``)
and the conventions need them and nothing of the canonical rows (:mod:`tracehouse.model`,
which re-exports them).
"""

from __future__ import annotations

from enum import StrEnum

DEFAULT_TENANT = "default"
DEFAULT_TTL_DAYS = 30
MAX_TTL_DAYS = 3650
# The largest token count and stated cost of one call taken as data: beyond them (as for
# negative, NaN or infinite values) the value means nothing, is not summed, and stays only in
# the raw attributes.
MAX_TOKENS = 10**12
MAX_COST_USD = 10**6
PREVIEW_CHARS = 200
# A run without its root span that has had no span end for this long is incomplete (seconds).
DEFAULT_RUN_IDLE_TIMEOUT = 1800.0


class Status(StrEnum):
    """Lifecycle of a run or a node.

    A run is ``running`` until its root span arrives, and then has the root's status. A run
    whose root has not arrived and whose latest span ended longer ago than the run idle timeout
    (:data:`DEFAULT_RUN_IDLE_TIMEOUT`, ``tracehouse serve --run-idle-timeout``) is
    ``incomplete``: its process most likely died before ending the run. The root still wins
    when it arrives later. Nodes are never ``incomplete``.
    """

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INCOMPLETE = "incomplete"


class NodeType(StrEnum):
    """What a node does inside a run."""

    AGENT = "agent"
    LLM = "llm"
    TOOL = "tool"
    RETRIEVER = "retriever"
    EMBEDDING = "embedding"
    STEP = "step"  # a step, chain or graph node
    GUARDRAIL = "guardrail"
    EVALUATOR = "evaluator"
    OTHER = "other"

    @classmethod
    def parse(cls, value: str | None) -> NodeType:
        """Read a node type leniently: ``chain`` is a step, unknown values are ``other``."""
        if not value:
            return cls.OTHER
        found = NODE_TYPE_NAMES.get(value)  # as written, most often
        return found if found is not None else NODE_TYPE_NAMES.get(value.strip().lower(), cls.OTHER)


_NODE_TYPE_ALIASES = {
    "chain": NodeType.STEP,
    "task": NodeType.STEP,
    "workflow": NodeType.STEP,
    "node": NodeType.STEP,
    "span": NodeType.STEP,
    "generation": NodeType.LLM,
    "chat": NodeType.LLM,
    "retrieval": NodeType.RETRIEVER,
    "embeddings": NodeType.EMBEDDING,
    "execute_tool": NodeType.TOOL,
    "invoke_agent": NodeType.AGENT,
}
# Every name NodeType.parse reads, lowercase (the engine's normalizer reads the same table).
NODE_TYPE_NAMES = {**{t.value: t for t in NodeType}, **_NODE_TYPE_ALIASES}


class EventKind(StrEnum):
    """The kinds of ordered items that make up a replay."""

    MESSAGE = "message"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    REASONING = "reasoning"
    APPROVAL = "approval"
    CHECKPOINT = "checkpoint"
    CUSTOM = "custom"

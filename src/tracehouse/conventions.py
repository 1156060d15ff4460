"""The conventions' rules, as data: which attributes of which convention (tracehouse.*, OTel
GenAI current and before 1.37, OpenInference, OpenLLMetry/Traceloop, Langfuse) make each
canonical field of a span (its node type, agent, model, provider, conversation, user, tool,
status, tokens), in which order and under which conditions.

Each rule is a small expression (:class:`Term`, :class:`Condition`): :meth:`Term.python` turns it
into a Python function over a span's attributes, and :mod:`tracehouse.ingest.engine_rules`
compiles the same expression into the engine's SQL. So a rule is written once, here, and both
normalizers (the Python one for the records the engine cannot read, the engine's for the rest)
apply it; tests/test_conventions.py evaluates every rule both ways over the same spans.

Core, like :mod:`tracehouse.semconv` and :mod:`tracehouse.model`, which are all it imports: the
instrumentation asks it which spans are model calls as they end (:mod:`tracehouse.instrument.nesting`),
the receiving side's normalizers (:mod:`tracehouse.ingest.normalize`, and the same tables as SQL in
:mod:`tracehouse.ingest.normalize_sql`) classify every stored span with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tracehouse import semconv
from tracehouse.vocabulary import MAX_TOKENS, NODE_TYPE_NAMES, NodeType, Status

OPERATION_TYPES = {
    semconv.OP_CHAT: NodeType.LLM,
    semconv.OP_TEXT_COMPLETION: NodeType.LLM,
    semconv.OP_GENERATE_CONTENT: NodeType.LLM,
    semconv.OP_EMBEDDINGS: NodeType.EMBEDDING,
    semconv.OP_RETRIEVAL: NodeType.RETRIEVER,
    semconv.OP_EXECUTE_TOOL: NodeType.TOOL,
    semconv.OP_INVOKE_AGENT: NodeType.AGENT,
    semconv.OP_CREATE_AGENT: NodeType.AGENT,
    semconv.OP_INVOKE_WORKFLOW: NodeType.STEP,
}
OI_TYPES = {
    semconv.OI_KIND_LLM: NodeType.LLM,
    semconv.OI_KIND_CHAIN: NodeType.STEP,
    semconv.OI_KIND_TOOL: NodeType.TOOL,
    semconv.OI_KIND_AGENT: NodeType.AGENT,
    semconv.OI_KIND_RETRIEVER: NodeType.RETRIEVER,
    semconv.OI_KIND_RERANKER: NodeType.RETRIEVER,
    semconv.OI_KIND_EMBEDDING: NodeType.EMBEDDING,
    semconv.OI_KIND_GUARDRAIL: NodeType.GUARDRAIL,
    semconv.OI_KIND_EVALUATOR: NodeType.EVALUATOR,
    semconv.OI_KIND_PROMPT: NodeType.STEP,
}
TRACELOOP_TYPES = {
    semconv.TRACELOOP_KIND_WORKFLOW: NodeType.STEP,
    semconv.TRACELOOP_KIND_TASK: NodeType.STEP,
    semconv.TRACELOOP_KIND_AGENT: NodeType.AGENT,
    semconv.TRACELOOP_KIND_TOOL: NodeType.TOOL,
}
TYPE_OPERATIONS = {
    NodeType.LLM: semconv.OP_CHAT,
    NodeType.TOOL: semconv.OP_EXECUTE_TOOL,
    NodeType.AGENT: semconv.OP_INVOKE_AGENT,
    NodeType.EMBEDDING: semconv.OP_EMBEDDINGS,
    NodeType.RETRIEVER: semconv.OP_RETRIEVAL,
}


# --- the expressions ------------------------------------------------------------------------------

# A span as the rules read it: its attributes (``attrs``), its attributes over its resource's
# (``both``: a span attribute wins), and the fields computed before (``fields``: ``name``, the
# span's name; ``status_code``, its OTLP status code; ``type``, ``run_root``).
Read = Callable[[Mapping[str, str], Mapping[str, str], Mapping[str, Any]], Any]


class Term:
    """A value of a span: text, unless said otherwise."""

    def python(self) -> Read:
        raise NotImplementedError


class Condition:
    def python(self) -> Read:
        raise NotImplementedError


@dataclass(frozen=True)
class Const(Term):
    value: str

    def python(self) -> Read:
        value = self.value
        return lambda attrs, both, fields: value


@dataclass(frozen=True)
class Attr(Term):
    """A span attribute, as text ('' when absent); ``resource=True``: the span's, else its
    resource's."""

    key: str
    resource: bool = False

    def python(self) -> Read:
        key = self.key
        if self.resource:
            return lambda attrs, both, fields: both.get(key, "")
        return lambda attrs, both, fields: attrs.get(key, "")


@dataclass(frozen=True)
class Field(Term):
    """A field computed before this rule (see :data:`Read`)."""

    name: str

    def python(self) -> Read:
        name = self.name
        return lambda attrs, both, fields: fields[name]


@dataclass(frozen=True)
class First(Term):
    """The first of ``terms`` that is not empty, else ''."""

    terms: tuple[Term, ...]

    def python(self) -> Read:
        reads = [t.python() for t in self.terms]

        def first(attrs: Mapping[str, str], both: Mapping[str, str], fields: Mapping[str, Any]) -> str:
            for read in reads:
                value = read(attrs, both, fields)
                if value:
                    return value
            return ""

        return first


def first_of(keys: tuple[str, ...], resource: bool = False) -> First:
    """The first non-empty attribute of ``keys``."""
    return First(tuple(Attr(k, resource) for k in keys))


@dataclass(frozen=True)
class Upper(Term):
    term: Term

    def python(self) -> Read:
        read = self.term.python()
        return lambda attrs, both, fields: read(attrs, both, fields).upper()


@dataclass(frozen=True)
class Lower(Term):
    term: Term

    def python(self) -> Read:
        read = self.term.python()
        return lambda attrs, both, fields: read(attrs, both, fields).lower()


@dataclass(frozen=True)
class Strip(Term):
    """Without surrounding ASCII whitespace (what the engine's ``trim`` removes)."""

    term: Term

    def python(self) -> Read:
        read = self.term.python()
        return lambda attrs, both, fields: read(attrs, both, fields).strip(WHITESPACE)


WHITESPACE = " \t\n\r\f\v"


@dataclass(frozen=True)
class RemovePrefix(Term):
    term: Term
    prefix: str

    def python(self) -> Read:
        read, prefix = self.term.python(), self.prefix
        return lambda attrs, both, fields: read(attrs, both, fields).removeprefix(prefix)


@dataclass(frozen=True)
class Lookup(Term):
    """``table[term]``, else ``default``."""

    term: Term
    table: Mapping[str, str]
    default: str = ""

    def python(self) -> Read:
        read, table, default = self.term.python(), self.table, self.default
        return lambda attrs, both, fields: table.get(read(attrs, both, fields), default)


@dataclass(frozen=True)
class Cases(Term):
    """The value of the first case whose condition holds, else ``default``."""

    cases: tuple[tuple[Condition, Term], ...]
    default: Term

    def python(self) -> Read:
        cases = [(c.python(), t.python()) for c, t in self.cases]
        default = self.default.python()

        def first_case(attrs: Mapping[str, str], both: Mapping[str, str], fields: Mapping[str, Any]) -> Any:
            for holds, value in cases:
                if holds(attrs, both, fields):
                    return value(attrs, both, fields)
            return default(attrs, both, fields)

        return first_case


@dataclass(frozen=True)
class TokenCount(Term):
    """A count (an integer): the first of ``keys`` whose value is a finite number, truncated;
    0 when that number is negative or over ``MAX_TOKENS`` (it means nothing), or when none is."""

    keys: tuple[str, ...]

    def python(self) -> Read:
        keys = self.keys

        def count(attrs: Mapping[str, str], both: Mapping[str, str], fields: Mapping[str, Any]) -> int:
            for key in keys:
                raw = attrs.get(key)
                if raw:
                    try:
                        number = float(raw)
                    except ValueError:
                        continue
                    if number == number and abs(number) != float("inf"):
                        return int(number) if 0 <= number <= MAX_TOKENS else 0
            return 0

        return count


@dataclass(frozen=True)
class NonEmpty(Condition):
    term: Term

    def python(self) -> Read:
        read = self.term.python()
        return lambda attrs, both, fields: read(attrs, both, fields) != ""


@dataclass(frozen=True)
class Equals(Condition):
    term: Term
    value: Any

    def python(self) -> Read:
        read, value = self.term.python(), self.value
        return lambda attrs, both, fields: read(attrs, both, fields) == value


@dataclass(frozen=True)
class OneOf(Condition):
    """The term's value is a key of ``table`` (or one of the values of a tuple)."""

    term: Term
    table: Mapping[str, Any] | tuple[str, ...]

    def python(self) -> Read:
        read, table = self.term.python(), frozenset(self.table)
        return lambda attrs, both, fields: read(attrs, both, fields) in table


@dataclass(frozen=True)
class HasAttr(Condition):
    """The span has the attribute (even empty)."""

    key: str

    def python(self) -> Read:
        key = self.key
        return lambda attrs, both, fields: key in attrs


@dataclass(frozen=True)
class IsTrue(Condition):
    """A field that is true or false (``run_root``)."""

    name: str

    def python(self) -> Read:
        name = self.name
        return lambda attrs, both, fields: bool(fields[name])


@dataclass(frozen=True)
class All(Condition):
    conditions: tuple[Condition, ...]

    def python(self) -> Read:
        reads = [c.python() for c in self.conditions]
        return lambda attrs, both, fields: all(r(attrs, both, fields) for r in reads)


@dataclass(frozen=True)
class AnyOf(Condition):
    conditions: tuple[Condition, ...]

    def python(self) -> Read:
        reads = [c.python() for c in self.conditions]
        return lambda attrs, both, fields: any(r(attrs, both, fields) for r in reads)


@dataclass(frozen=True)
class Not(Condition):
    condition: Condition

    def python(self) -> Read:
        read = self.condition.python()
        return lambda attrs, both, fields: not read(attrs, both, fields)


# --- the rules ------------------------------------------------------------------------------------

_values = lambda table: {k: v.value for k, v in table.items()}  # noqa: E731
_NAMES = _values(NODE_TYPE_NAMES)
_OPERATION = Attr(semconv.GEN_AI_OPERATION_NAME)
_OI_KIND = Upper(Attr(semconv.OPENINFERENCE_SPAN_KIND))
_REQUEST_TYPE = Attr(semconv.LLM_REQUEST_TYPE)
_TRACELOOP_KIND = Attr(semconv.TRACELOOP_SPAN_KIND)
_LANGFUSE_TYPE = Attr(semconv.LANGFUSE_OBSERVATION_TYPE)
_DECLARED_TYPE = Attr(semconv.TRACEHOUSE_NODE_TYPE)

# What kind of node a span is: the type it declares, else the first convention that says.
NODE_TYPE = Cases(
    (
        (NonEmpty(_DECLARED_TYPE), Lookup(Lower(Strip(_DECLARED_TYPE)), _NAMES, NodeType.OTHER.value)),
        (OneOf(_OPERATION, OPERATION_TYPES), Lookup(_OPERATION, _values(OPERATION_TYPES))),
        (OneOf(_OI_KIND, OI_TYPES), Lookup(_OI_KIND, _values(OI_TYPES))),
        (
            NonEmpty(_REQUEST_TYPE),
            Cases(((Equals(_REQUEST_TYPE, "embedding"), Const(NodeType.EMBEDDING.value)),), Const(NodeType.LLM.value)),
        ),
        (OneOf(_TRACELOOP_KIND, TRACELOOP_TYPES), Lookup(_TRACELOOP_KIND, _values(TRACELOOP_TYPES))),
        (NonEmpty(_LANGFUSE_TYPE), Lookup(Lower(Strip(_LANGFUSE_TYPE)), _NAMES, NodeType.OTHER.value)),
        (
            AnyOf(
                (
                    NonEmpty(_OPERATION),
                    NonEmpty(Attr(semconv.GEN_AI_REQUEST_MODEL)),
                    NonEmpty(Attr(semconv.GEN_AI_SYSTEM)),
                )
            ),
            Const(NodeType.LLM.value),
        ),
    ),
    Const(NodeType.OTHER.value),
)

# The operation: the span's, else the one its node type implies.
OPERATION = Cases(
    ((NonEmpty(_OPERATION), _OPERATION),), Lookup(Field("type"), {t.value: op for t, op in TYPE_OPERATIONS.items()})
)

# Where each field is read from, first non-empty value wins.
AGENT_KEYS = (semconv.GEN_AI_AGENT_NAME, semconv.OI_AGENT_NAME)
AGENT_NODE_KEYS = (semconv.TRACELOOP_ENTITY_NAME,)  # an agent node with no agent name
RUN_NAME_KEYS = (semconv.GEN_AI_WORKFLOW_NAME, semconv.TRACELOOP_WORKFLOW_NAME, semconv.LANGFUSE_TRACE_NAME)
MODEL_KEYS = (
    semconv.GEN_AI_RESPONSE_MODEL,
    semconv.GEN_AI_REQUEST_MODEL,
    semconv.OI_LLM_MODEL_NAME,
    semconv.LANGFUSE_OBSERVATION_MODEL,
)
PROVIDER_KEYS = (semconv.GEN_AI_PROVIDER_NAME, semconv.GEN_AI_SYSTEM, semconv.OI_LLM_PROVIDER, semconv.OI_LLM_SYSTEM)
CONVERSATION_KEYS = (semconv.GEN_AI_CONVERSATION_ID, semconv.SESSION_ID, semconv.LANGFUSE_SESSION_ID)
USER_KEYS = (semconv.USER_ID, semconv.ENDUSER_ID, semconv.LANGFUSE_USER_ID)
TOOL_NAME_KEYS = (semconv.GEN_AI_TOOL_NAME, semconv.OI_TOOL_NAME)
TOOL_CALL_ID_KEYS = (semconv.GEN_AI_TOOL_CALL_ID, semconv.OI_TOOL_CALL_ID)

_IS_AGENT = Equals(Field("type"), NodeType.AGENT.value)
_SPAN_AGENT_NAME = Strip(RemovePrefix(Field("name"), semconv.OP_INVOKE_AGENT))

# The agent: the one the span names; an agent node's own name; a run's name on its root span
# (else the root span's name: a LangGraph graph's run name, a workflow's name).
AGENT = Cases(
    (
        (NonEmpty(first_of(AGENT_KEYS)), first_of(AGENT_KEYS)),
        (All((_IS_AGENT, NonEmpty(first_of(AGENT_NODE_KEYS)))), first_of(AGENT_NODE_KEYS)),
        (All((_IS_AGENT, NonEmpty(_SPAN_AGENT_NAME))), _SPAN_AGENT_NAME),
        (
            All((IsTrue("run_root"), NonEmpty(first_of(RUN_NAME_KEYS, resource=True)))),
            first_of(RUN_NAME_KEYS, resource=True),
        ),
        (IsTrue("run_root"), _SPAN_AGENT_NAME),
    ),
    Const(""),
)
MODEL = first_of(MODEL_KEYS)
PROVIDER = first_of(PROVIDER_KEYS)
CONVERSATION = first_of(CONVERSATION_KEYS, resource=True)
USER = first_of(USER_KEYS, resource=True)
TOOL_NAME = First((first_of(TOOL_NAME_KEYS), Strip(RemovePrefix(Field("name"), semconv.OP_EXECUTE_TOOL))))
TOOL_CALL_ID = first_of(TOOL_CALL_ID_KEYS)

# A run's status from one span: cancelled when it says so, failed on an error status (OTLP's,
# or Langfuse's level), else completed.
STATUS = Cases(
    (
        (Equals(Attr(semconv.TRACEHOUSE_STATUS), Status.CANCELLED.value), Const(Status.CANCELLED.value)),
        (
            AnyOf((Equals(Field("status_code"), 2), Equals(Attr(semconv.LANGFUSE_OBSERVATION_LEVEL), "ERROR"))),
            Const(Status.FAILED.value),
        ),
    ),
    Const(Status.COMPLETED.value),
)

# Token counts, each from the first convention that states it.
TOKEN_KEYS = {
    "input_tokens": (
        semconv.GEN_AI_USAGE_INPUT_TOKENS,
        semconv.GEN_AI_USAGE_PROMPT_TOKENS,
        semconv.OI_LLM_TOKEN_COUNT_PROMPT,
    ),
    "output_tokens": (
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
        semconv.GEN_AI_USAGE_COMPLETION_TOKENS,
        semconv.OI_LLM_TOKEN_COUNT_COMPLETION,
    ),
    "cache_read_tokens": (
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS_TRACELOOP,
        semconv.OI_LLM_TOKEN_COUNT_CACHE_READ,
    ),
    "cache_creation_tokens": (
        semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
        semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS_TRACELOOP,
        semconv.OI_LLM_TOKEN_COUNT_CACHE_WRITE,
    ),
    "reasoning_tokens": (
        semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        semconv.GEN_AI_USAGE_REASONING_TOKENS_TRACELOOP,
        semconv.OI_LLM_TOKEN_COUNT_REASONING,
    ),
}
TOKENS = {field: TokenCount(keys) for field, keys in TOKEN_KEYS.items()}

_node_type = NODE_TYPE.python()
_NO_FIELDS: Mapping[str, Any] = {}


def node_type(attrs: Mapping[str, str]) -> NodeType:
    """What kind of node a span with these attributes is (:data:`NODE_TYPE`)."""
    return NodeType(_node_type(attrs, attrs, _NO_FIELDS))

"""The conventions' rules: what kind of node a span is, from whichever convention's attributes
it carries (tracehouse.*, OTel GenAI, OpenInference, OpenLLMetry/Traceloop, Langfuse).

Core, like :mod:`tracehouse.semconv` and :mod:`tracehouse.model`, which are all it imports: the
instrumentation asks it which spans are model calls as they end (:mod:`tracehouse.instrument.nesting`),
the receiving side's normalizers (:mod:`tracehouse.ingest.normalize`, and the same tables as SQL in
:mod:`tracehouse.ingest.normalize_sql`) classify every stored span with it.
"""

from __future__ import annotations

from tracehouse import semconv
from tracehouse.model import NodeType

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


def node_type(attrs: dict[str, str]) -> NodeType:
    if attrs.get(semconv.TRACEHOUSE_NODE_TYPE):
        return NodeType.parse(attrs[semconv.TRACEHOUSE_NODE_TYPE])
    operation = attrs.get(semconv.GEN_AI_OPERATION_NAME, "")
    if operation in OPERATION_TYPES:
        return OPERATION_TYPES[operation]
    if attrs.get(semconv.OPENINFERENCE_SPAN_KIND, "").upper() in OI_TYPES:
        return OI_TYPES[attrs[semconv.OPENINFERENCE_SPAN_KIND].upper()]
    if attrs.get(semconv.LLM_REQUEST_TYPE):
        return NodeType.EMBEDDING if attrs[semconv.LLM_REQUEST_TYPE] == "embedding" else NodeType.LLM
    if attrs.get(semconv.TRACELOOP_SPAN_KIND, "") in TRACELOOP_TYPES:
        return TRACELOOP_TYPES[attrs[semconv.TRACELOOP_SPAN_KIND]]
    if attrs.get(semconv.LANGFUSE_OBSERVATION_TYPE):
        return NodeType.parse(attrs[semconv.LANGFUSE_OBSERVATION_TYPE])
    if operation or attrs.get(semconv.GEN_AI_REQUEST_MODEL) or attrs.get(semconv.GEN_AI_SYSTEM):
        return OPERATION_TYPES.get(operation, NodeType.LLM)
    return NodeType.OTHER

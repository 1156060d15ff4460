"""Every attribute, event and span name tracehouse reads or writes, spelled once.

OpenTelemetry GenAI semantic conventions come first. ``tracehouse.*`` names exist only where
GenAI has no name of its own. The names of other conventions (earlier GenAI releases,
OpenInference, OpenLLMetry/Traceloop, Langfuse) are here because the receiver reads them.

The strings are defined here rather than imported from ``opentelemetry-semantic-conventions``:
the upstream Python constants for GenAI are marked deprecated since the GenAI conventions moved
repositories, and the receiver must not depend on a development package. ``tests/test_semconv.py``
checks every name below against the upstream package wherever it defines one.

Nothing else in tracehouse spells an attribute string: import it from here.
"""

from __future__ import annotations

from typing import Final

# --------------------------------------------------------------------------------------------
# OpenTelemetry general conventions
# --------------------------------------------------------------------------------------------

SERVICE_NAME: Final = "service.name"
SERVICE_VERSION: Final = "service.version"
DEPLOYMENT_ENVIRONMENT_NAME: Final = "deployment.environment.name"
ERROR_TYPE: Final = "error.type"
EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
EXCEPTION_STACKTRACE: Final = "exception.stacktrace"
EXCEPTION_EVENT: Final = "exception"  # the span event name the SDKs use for record_exception
SESSION_ID: Final = "session.id"
USER_ID: Final = "user.id"
ENDUSER_ID: Final = "enduser.id"  # deprecated upstream in favour of user.id; still sent by many

# --------------------------------------------------------------------------------------------
# OpenTelemetry GenAI conventions (current names)
# --------------------------------------------------------------------------------------------

GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_OUTPUT_TYPE: Final = "gen_ai.output.type"
GEN_AI_DATA_SOURCE_ID: Final = "gen_ai.data_source.id"

GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_AGENT_DESCRIPTION: Final = "gen_ai.agent.description"
GEN_AI_AGENT_VERSION: Final = "gen_ai.agent.version"
GEN_AI_WORKFLOW_NAME: Final = "gen_ai.workflow.name"

GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_SEED: Final = "gen_ai.request.seed"
GEN_AI_REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"

GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"

GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
# The Anthropic SDK's own tracing names cache writes so.
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"

GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"

GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
GEN_AI_TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"

GEN_AI_RETRIEVAL_QUERY_TEXT: Final = "gen_ai.retrieval.query.text"
GEN_AI_RETRIEVAL_DOCUMENTS: Final = "gen_ai.retrieval.documents"
GEN_AI_EMBEDDINGS_DIMENSION_COUNT: Final = "gen_ai.embeddings.dimension.count"

GEN_AI_EVALUATION_NAME: Final = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"
GEN_AI_EVALUATION_EXPLANATION: Final = "gen_ai.evaluation.explanation"

# Values of gen_ai.operation.name; a span's name is "{operation} {model or agent or tool}".
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_GENERATE_CONTENT: Final = "generate_content"
OP_EMBEDDINGS: Final = "embeddings"
OP_RETRIEVAL: Final = "retrieval"
OP_CREATE_AGENT: Final = "create_agent"
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_INVOKE_WORKFLOW: Final = "invoke_workflow"
OP_EXECUTE_TOOL: Final = "execute_tool"

# Operations whose spans are LLM calls (the only nodes whose tokens and cost are summed).
LLM_OPERATIONS: Final = frozenset({OP_CHAT, OP_TEXT_COMPLETION, OP_GENERATE_CONTENT})

# Environment variable that turns message content capture on (GenAI instrumentations).
ENV_CAPTURE_MESSAGE_CONTENT: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# Its values beside true/false when the latest experimental GenAI conventions are opted into.
CAPTURE_MODE_SPAN_ONLY: Final = "span_only"
CAPTURE_MODE_NO_CONTENT: Final = "no_content"
CAPTURE_MODES_WITH_CONTENT: Final = frozenset({"span_only", "event_only", "span_and_event"})
# Opting into the latest (experimental) GenAI conventions: messages as span attributes.
ENV_SEMCONV_STABILITY_OPT_IN: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
SEMCONV_GEN_AI_LATEST: Final = "gen_ai_latest_experimental"
# The Anthropic SDK's own tracing: its content mode (metadata only by default).
ENV_ANTHROPIC_TRACES_CONTENT_MODE: Final = "ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE"
ANTHROPIC_CONTENT_MODE_CONTENT: Final = "content"
ANTHROPIC_CONTENT_MODE_METADATA: Final = "metadata_only"
# Provider names (gen_ai.provider.name values).
PROVIDER_OPENAI: Final = "openai"

# --------------------------------------------------------------------------------------------
# OpenTelemetry GenAI conventions before 1.37 (still emitted by many instrumentations)
# --------------------------------------------------------------------------------------------

GEN_AI_SYSTEM: Final = "gen_ai.system"  # replaced by gen_ai.provider.name
GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"  # -> input_tokens
GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"  # -> output_tokens
GEN_AI_PROMPT: Final = "gen_ai.prompt"  # also the prefix of Traceloop's flattened prompts
GEN_AI_COMPLETION: Final = "gen_ai.completion"  # also the prefix of flattened completions

# Per-message span events of the earlier conventions.
EVENT_GEN_AI_SYSTEM_MESSAGE: Final = "gen_ai.system.message"
EVENT_GEN_AI_USER_MESSAGE: Final = "gen_ai.user.message"
EVENT_GEN_AI_ASSISTANT_MESSAGE: Final = "gen_ai.assistant.message"
EVENT_GEN_AI_TOOL_MESSAGE: Final = "gen_ai.tool.message"
EVENT_GEN_AI_CHOICE: Final = "gen_ai.choice"
# The current conventions' single event carrying a whole inference's details.
EVENT_GEN_AI_INFERENCE_DETAILS: Final = "gen_ai.client.inference.operation.details"
# Attributes of those per-message events (as the Python instrumentations set them).
MESSAGE_EVENT_CONTENT: Final = "content"
MESSAGE_EVENT_ID: Final = "id"
MESSAGE_EVENT_MESSAGE: Final = "message"  # gen_ai.choice: the message as JSON
MESSAGE_EVENT_FINISH_REASON: Final = "finish_reason"

# Fields of one flattened message: Traceloop's "gen_ai.prompt.<n>.<field>" and its tool calls
# "gen_ai.completion.<n>.tool_calls.<m>.<field>".
FLAT_ROLE: Final = "role"
FLAT_CONTENT: Final = "content"
FLAT_TOOL_CALL_ID: Final = "tool_call_id"
FLAT_TOOL_CALLS: Final = "tool_calls"

# --------------------------------------------------------------------------------------------
# OpenInference (Arize Phoenix and its instrumentors)
# --------------------------------------------------------------------------------------------

OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
OI_INPUT_VALUE: Final = "input.value"
OI_INPUT_MIME_TYPE: Final = "input.mime_type"
OI_OUTPUT_VALUE: Final = "output.value"
OI_OUTPUT_MIME_TYPE: Final = "output.mime_type"
OI_LLM_MODEL_NAME: Final = "llm.model_name"
OI_LLM_PROVIDER: Final = "llm.provider"
OI_LLM_SYSTEM: Final = "llm.system"
OI_LLM_INVOCATION_PARAMETERS: Final = "llm.invocation_parameters"
OI_LLM_INPUT_MESSAGES: Final = "llm.input_messages"  # flattened: llm.input_messages.N.message.*
OI_LLM_OUTPUT_MESSAGES: Final = "llm.output_messages"
OI_LLM_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"
OI_LLM_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"
OI_LLM_TOKEN_COUNT_TOTAL: Final = "llm.token_count.total"
OI_LLM_TOKEN_COUNT_CACHE_READ: Final = "llm.token_count.prompt_details.cache_read"
OI_LLM_TOKEN_COUNT_CACHE_WRITE: Final = "llm.token_count.prompt_details.cache_write"
OI_LLM_TOKEN_COUNT_REASONING: Final = "llm.token_count.completion_details.reasoning"
OI_LLM_COST_TOTAL: Final = "llm.cost.total"
OI_MESSAGE_ROLE: Final = "message.role"
OI_MESSAGE_CONTENT: Final = "message.content"
OI_MESSAGE_NAME: Final = "message.name"
OI_MESSAGE_TOOL_CALLS: Final = "message.tool_calls"
OI_MESSAGE_TOOL_CALL_ID: Final = "message.tool_call_id"
OI_TOOL_CALL_PREFIX: Final = "tool_call."  # fields of one of message.tool_calls.<m>
OI_TOOL_NAME: Final = "tool.name"
OI_TOOL_PARAMETERS: Final = "tool.parameters"
OI_TOOL_CALL_ID: Final = "tool_call.id"
OI_TOOL_CALL_FUNCTION_NAME: Final = "tool_call.function.name"
OI_TOOL_CALL_FUNCTION_ARGUMENTS: Final = "tool_call.function.arguments"
OI_AGENT_NAME: Final = "agent.name"
OI_GRAPH_NODE_ID: Final = "graph.node.id"
OI_GRAPH_NODE_NAME: Final = "graph.node.name"
OI_GRAPH_NODE_PARENT_ID: Final = "graph.node.parent_id"
OI_METADATA: Final = "metadata"
OI_TAG_TAGS: Final = "tag.tags"
OI_RETRIEVAL_DOCUMENTS: Final = "retrieval.documents"

# Values of openinference.span.kind.
OI_KIND_LLM: Final = "LLM"
OI_KIND_CHAIN: Final = "CHAIN"
OI_KIND_TOOL: Final = "TOOL"
OI_KIND_AGENT: Final = "AGENT"
OI_KIND_RETRIEVER: Final = "RETRIEVER"
OI_KIND_EMBEDDING: Final = "EMBEDDING"
OI_KIND_RERANKER: Final = "RERANKER"
OI_KIND_GUARDRAIL: Final = "GUARDRAIL"
OI_KIND_EVALUATOR: Final = "EVALUATOR"
OI_KIND_PROMPT: Final = "PROMPT"

# --------------------------------------------------------------------------------------------
# OpenLLMetry / Traceloop
# --------------------------------------------------------------------------------------------

TRACELOOP_SPAN_KIND: Final = "traceloop.span.kind"
TRACELOOP_WORKFLOW_NAME: Final = "traceloop.workflow.name"
TRACELOOP_ENTITY_NAME: Final = "traceloop.entity.name"
TRACELOOP_ENTITY_PATH: Final = "traceloop.entity.path"
TRACELOOP_ENTITY_INPUT: Final = "traceloop.entity.input"
TRACELOOP_ENTITY_OUTPUT: Final = "traceloop.entity.output"
TRACELOOP_ASSOCIATION_PROPERTIES: Final = "traceloop.association.properties"  # a prefix
LLM_REQUEST_TYPE: Final = "llm.request.type"
LLM_USAGE_TOTAL_TOKENS: Final = "llm.usage.total_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS_TRACELOOP: Final = "gen_ai.usage.cache_read_input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS_TRACELOOP: Final = "gen_ai.usage.cache_creation_input_tokens"
GEN_AI_USAGE_REASONING_TOKENS_TRACELOOP: Final = "gen_ai.usage.reasoning_tokens"

# Values of traceloop.span.kind.
TRACELOOP_KIND_WORKFLOW: Final = "workflow"
TRACELOOP_KIND_TASK: Final = "task"
TRACELOOP_KIND_AGENT: Final = "agent"
TRACELOOP_KIND_TOOL: Final = "tool"

# --------------------------------------------------------------------------------------------
# Langfuse (its OpenTelemetry property mapping)
# --------------------------------------------------------------------------------------------

LANGFUSE_TRACE_NAME: Final = "langfuse.trace.name"
LANGFUSE_TRACE_INPUT: Final = "langfuse.trace.input"
LANGFUSE_TRACE_OUTPUT: Final = "langfuse.trace.output"
LANGFUSE_TRACE_METADATA: Final = "langfuse.trace.metadata"  # a prefix
LANGFUSE_SESSION_ID: Final = "langfuse.session.id"
LANGFUSE_USER_ID: Final = "langfuse.user.id"
LANGFUSE_OBSERVATION_TYPE: Final = "langfuse.observation.type"
LANGFUSE_OBSERVATION_INPUT: Final = "langfuse.observation.input"
LANGFUSE_OBSERVATION_OUTPUT: Final = "langfuse.observation.output"
LANGFUSE_OBSERVATION_METADATA: Final = "langfuse.observation.metadata"  # a prefix
LANGFUSE_OBSERVATION_LEVEL: Final = "langfuse.observation.level"
LANGFUSE_OBSERVATION_STATUS_MESSAGE: Final = "langfuse.observation.status_message"
LANGFUSE_OBSERVATION_MODEL: Final = "langfuse.observation.model.name"
LANGFUSE_OBSERVATION_MODEL_PARAMETERS: Final = "langfuse.observation.model.parameters"
LANGFUSE_OBSERVATION_USAGE_DETAILS: Final = "langfuse.observation.usage_details"
LANGFUSE_OBSERVATION_COST_DETAILS: Final = "langfuse.observation.cost_details"

# --------------------------------------------------------------------------------------------
# tracehouse.* — only where GenAI has no name
# --------------------------------------------------------------------------------------------

TRACEHOUSE_RUN_ID: Final = "tracehouse.run.id"
TRACEHOUSE_PARENT_RUN_ID: Final = "tracehouse.run.parent_id"
TRACEHOUSE_RUN_INPUT: Final = "tracehouse.run.input"
TRACEHOUSE_RUN_OUTPUT: Final = "tracehouse.run.output"
TRACEHOUSE_RUN_METADATA: Final = "tracehouse.run.metadata"  # a prefix: tracehouse.run.metadata.<key>
TRACEHOUSE_NODE_TYPE: Final = "tracehouse.node.type"
TRACEHOUSE_NODE_INPUT: Final = "tracehouse.node.input"
TRACEHOUSE_NODE_OUTPUT: Final = "tracehouse.node.output"
TRACEHOUSE_STATUS: Final = "tracehouse.status"  # set to "cancelled" on a cancelled span
TRACEHOUSE_GUARDRAIL_TRIGGERED: Final = "tracehouse.guardrail.triggered"  # a guardrail step's verdict
TRACEHOUSE_TENANT: Final = "tracehouse.tenant"
TRACEHOUSE_TTL_DAYS: Final = "tracehouse.ttl_days"
TRACEHOUSE_COST_USD: Final = "tracehouse.cost.usd"  # GenAI has no cost attribute yet
TRACEHOUSE_EVENT_DATA: Final = "tracehouse.event.data"  # JSON payload of a custom run event
TRACEHOUSE_CHECKPOINT_ID: Final = "tracehouse.checkpoint.id"
TRACEHOUSE_CHECKPOINT_STATE: Final = "tracehouse.checkpoint.state"
TRACEHOUSE_TRUNCATED: Final = "tracehouse.truncated"  # prefix: tracehouse.truncated.<attribute>

# Span event names tracehouse emits for run events.
EVENT_TRACEHOUSE_CHECKPOINT: Final = "tracehouse.checkpoint"
EVENT_TRACEHOUSE_APPROVAL: Final = "tracehouse.approval"

# --------------------------------------------------------------------------------------------
# Payload attributes: large content that the store keeps apart from the span's summary
# attributes (in PayloadAttributes, which may expire sooner than the rest of the row).
# --------------------------------------------------------------------------------------------

PAYLOAD_ATTRIBUTES: Final = frozenset(
    {
        GEN_AI_INPUT_MESSAGES,
        GEN_AI_OUTPUT_MESSAGES,
        GEN_AI_SYSTEM_INSTRUCTIONS,
        GEN_AI_TOOL_CALL_ARGUMENTS,
        GEN_AI_TOOL_CALL_RESULT,
        GEN_AI_TOOL_DEFINITIONS,
        GEN_AI_RETRIEVAL_DOCUMENTS,
        GEN_AI_RETRIEVAL_QUERY_TEXT,
        GEN_AI_PROMPT,
        GEN_AI_COMPLETION,
        OI_INPUT_VALUE,
        OI_OUTPUT_VALUE,
        OI_TOOL_PARAMETERS,
        TRACELOOP_ENTITY_INPUT,
        TRACELOOP_ENTITY_OUTPUT,
        LANGFUSE_TRACE_INPUT,
        LANGFUSE_TRACE_OUTPUT,
        LANGFUSE_OBSERVATION_INPUT,
        LANGFUSE_OBSERVATION_OUTPUT,
        TRACEHOUSE_RUN_INPUT,
        TRACEHOUSE_RUN_OUTPUT,
        TRACEHOUSE_NODE_INPUT,
        TRACEHOUSE_NODE_OUTPUT,
        TRACEHOUSE_EVENT_DATA,
        TRACEHOUSE_CHECKPOINT_STATE,
    }
)
# Flattened message attributes: "<prefix>.<index>.<field>".
PAYLOAD_PREFIXES: Final = (
    GEN_AI_PROMPT + ".",
    GEN_AI_COMPLETION + ".",
    OI_LLM_INPUT_MESSAGES + ".",
    OI_LLM_OUTPUT_MESSAGES + ".",
    OI_RETRIEVAL_DOCUMENTS + ".",
)


def is_payload_attribute(key: str) -> bool:
    """True for attributes holding prompts, completions, tool I/O or other large content."""
    return key in PAYLOAD_ATTRIBUTES or key.startswith(PAYLOAD_PREFIXES)

"""OpenAI Agents SDK: agents, handoffs, tools, guardrails, model calls.

Through OpenInference's maintained ``openinference-instrumentation-openai-agents``, a trace
processor of the SDK's own tracing: each agent, handoff, function tool, guardrail and model
response becomes a span. The SDK's default processor (which uploads traces to OpenAI) stays
unless the application removes it. Inputs and outputs are hidden when tracehouse's content
capture is off.
"""

from __future__ import annotations

from tracehouse.instrument.capture import Capture
from tracehouse.instrument.frameworks import Integration


def enable(capture: Capture) -> None:
    from openinference.instrumentation import TraceConfig
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    hidden = not capture.content
    OpenAIAgentsInstrumentor().instrument(config=TraceConfig(hide_inputs=hidden, hide_outputs=hidden))


INTEGRATION = Integration(name="openai-agents", library="openai-agents", supported=((0, 2), (1,)), enable=enable)

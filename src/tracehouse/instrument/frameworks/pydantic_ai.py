"""Pydantic AI: agents, model calls and tools, from its own OpenTelemetry instrumentation.

Pydantic AI emits GenAI-convention spans itself (``invoke_agent``, ``chat {model}``,
``execute_tool``); this turns it on for every agent, with prompts and answers recorded when
tracehouse's content capture is on.
"""

from __future__ import annotations

from tracehouse.instrument.capture import Capture
from tracehouse.instrument.frameworks import Integration


def enable(capture: Capture) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.models.instrumented import InstrumentationSettings

    Agent.instrument_all(InstrumentationSettings(include_content=capture.content))


INTEGRATION = Integration(name="pydantic-ai", library="pydantic-ai-slim", supported=((1, 0), (3,)), enable=enable)

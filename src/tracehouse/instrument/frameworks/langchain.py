"""LangChain and LangGraph: chains, graph nodes, chat models, tools, agents.

Through OpenInference's maintained ``openinference-instrumentation-langchain`` (a LangChain
callback handler): each runnable becomes a span (CHAIN, LLM, TOOL, AGENT...), so a LangGraph
invocation is one run whose nodes are the graph's nodes, with the model calls and tool calls
inside them. Inputs and outputs are hidden when tracehouse's content capture is off.
"""

from __future__ import annotations

from tracehouse.instrument.capture import Capture
from tracehouse.instrument.frameworks import Integration


def enable(capture: Capture) -> None:
    from openinference.instrumentation import TraceConfig
    from openinference.instrumentation.langchain import LangChainInstrumentor

    hidden = not capture.content
    LangChainInstrumentor().instrument(config=TraceConfig(hide_inputs=hidden, hide_outputs=hidden))


INTEGRATION = Integration(name="langchain", library="langchain-core", supported=((0, 3), (2,)), enable=enable)

"""The emitting side: record agent runs, nodes, LLM calls and tools as OTel GenAI spans."""

from tracehouse.instrument.api import (
    LLMCallHandle,
    RunHandle,
    SpanHandle,
    ToolHandle,
    checkpoint,
    current_run,
    event,
    llm_call,
    new_run_id,
    node,
    run,
    tool,
)
from tracehouse.instrument.auto import InstrumentationWarning, auto
from tracehouse.instrument.capture import Capture, Redactor
from tracehouse.instrument.setup import Configuration, StoreLogExporter, StoreSpanExporter, configure, shutdown

__all__ = [
    "Capture",
    "InstrumentationWarning",
    "Configuration",
    "LLMCallHandle",
    "Redactor",
    "RunHandle",
    "SpanHandle",
    "StoreLogExporter",
    "StoreSpanExporter",
    "ToolHandle",
    "auto",
    "checkpoint",
    "configure",
    "current_run",
    "event",
    "llm_call",
    "new_run_id",
    "node",
    "run",
    "shutdown",
    "tool",
]

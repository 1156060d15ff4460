"""tracehouse: the flight recorder for AI agents."""

__version__ = "0.1.0"

from tracehouse.instrument import (  # noqa: E402  (the version is needed by the instrumentation)
    checkpoint,
    configure,
    current_run,
    event,
    llm_call,
    node,
    run,
    tool,
)

__all__ = ["__version__", "checkpoint", "configure", "current_run", "event", "llm_call", "node", "run", "tool"]

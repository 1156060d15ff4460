"""tracehouse: the flight recorder for AI agents."""

from typing import Any

from tracehouse._version import __version__
from tracehouse.instrument import (
    checkpoint,
    configure,
    current_run,
    event,
    llm_call,
    node,
    run,
    tool,
)

__all__ = [
    "Client",
    "__version__",
    "checkpoint",
    "configure",
    "current_run",
    "event",
    "llm_call",
    "node",
    "run",
    "tool",
]


def __getattr__(name: str) -> Any:
    # The client is imported on first use, so that recording agents does not load the HTTP stack.
    if name == "Client":
        from tracehouse.client import Client

        return Client
    raise AttributeError(f"module 'tracehouse' has no attribute {name!r}")

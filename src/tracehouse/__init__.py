"""tracehouse: the flight recorder for AI agents.

The recording API (``tracehouse.run``, ``node``, ``llm_call``, ``tool``, ...) and the Python
client (``tracehouse.Client``) are loaded on first use: importing any tracehouse module runs
this file first, and neither a server (``tracehouse.store``, ``tracehouse.ingest``) nor the
client should load the OpenTelemetry SDK that only recording needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tracehouse._version import __version__

if TYPE_CHECKING:
    from tracehouse.client import Client
    from tracehouse.instrument import checkpoint, configure, current_run, event, llm_call, node, run, tool

# Each public name and the module it comes from.
_LAZY = {
    "Client": "tracehouse.client",
    **dict.fromkeys(
        ("checkpoint", "configure", "current_run", "event", "llm_call", "node", "run", "tool"), "tracehouse.instrument"
    ),
}

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
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tracehouse' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

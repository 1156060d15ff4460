"""Auto-instrumentation, one module per framework: what turns it on and which versions it
supports. :func:`tracehouse.instrument.auto` enables those whose library is installed.

Where a maintained instrumentor already emits GenAI-convention (or OpenInference, OpenLLMetry)
spans, the integration turns it on with tracehouse's content setting and adds what it misses;
where none fits (the OpenAI Responses API, the OpenAI Agents SDK's runs and handoffs), the
integration is tracehouse's own, built on the hand API. The run structure (run ids on every
span inside ``tracehouse.run``), redaction of the content other instrumentors record, cost
(from the price table, at the receiver) and one count per model call come from tracehouse for
every integration alike.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tracehouse.instrument.capture import Capture

_RELEASE = re.compile(r"\d+(?:\.\d+)*")


@dataclass(frozen=True)
class Integration:
    """One auto-instrumented framework."""

    name: str  # what auto() takes, and the pip extra: tracehouse[name]
    library: str  # the distribution whose presence turns it on
    supported: tuple[tuple[int, ...], tuple[int, ...]]  # versions from (inclusive) to (exclusive)
    enable: Callable[[Capture], None]  # raises ImportError when the extra is not installed

    def supports(self, version: str) -> bool:
        low, high = self.supported
        return low <= release(version) < high

    def describe_supported(self) -> str:
        low, high = self.supported
        return f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: "1.26.0rc1" -> (1, 26, 0)."""
    match = _RELEASE.match(version)
    return tuple(int(part) for part in match.group().split(".")) if match else ()

"""Process-wide instrumentation settings (set by ``configure()``), read by the API."""

from __future__ import annotations

from tracehouse.instrument.capture import Capture

_capture: Capture | None = None


def capture() -> Capture:
    """The content capture in force: the configured one, else the defaults (and environment)."""
    global _capture
    if _capture is None:
        _capture = Capture.from_options()
    return _capture


def set_capture(value: Capture | None) -> None:
    global _capture
    _capture = value

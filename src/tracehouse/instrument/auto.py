"""``auto()``: turn on instrumentation for every supported framework that is installed.

Each framework is one module of :mod:`tracehouse.instrument.frameworks` and one pip extra
(``pip install 'tracehouse[openai]'``). ``auto()`` skips a library that is not installed,
warns and skips one whose version it does not support or whose extra is missing, and warns
and does nothing for one it already turned on: calling it twice is harmless.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
import warnings
from collections.abc import Iterable

from tracehouse.instrument import settings
from tracehouse.instrument.frameworks import (
    Integration,
    anthropic_sdk,
    langchain,
    openai_agents,
    openai_sdk,
    pydantic_ai,
)

log = logging.getLogger(__name__)

INTEGRATIONS: dict[str, Integration] = {
    i.name: i
    for i in (
        openai_sdk.INTEGRATION,
        anthropic_sdk.INTEGRATION,
        langchain.INTEGRATION,
        openai_agents.INTEGRATION,
        pydantic_ai.INTEGRATION,
    )
}

_lock = threading.Lock()
_enabled: dict[str, str] = {}  # name -> library version


class InstrumentationWarning(UserWarning):
    """A framework was not instrumented (or already was); the message says why."""


def _installed_version(library: str) -> str | None:
    try:
        return importlib.metadata.version(library)
    except importlib.metadata.PackageNotFoundError:
        return None


def auto(only: Iterable[str] | None = None) -> list[str]:
    """Instrument the installed frameworks (or only those named); return the ones turned on now.

    Spans go wherever OpenTelemetry sends them: call :func:`tracehouse.configure` first (before
    or after makes no difference to what is recorded, but content capture follows the setting
    in force when ``auto()`` runs).
    """
    names = list(INTEGRATIONS) if only is None else list(only)
    unknown = [n for n in names if n not in INTEGRATIONS]
    if unknown:
        raise ValueError(f"unknown framework(s) {', '.join(unknown)}; known: {', '.join(INTEGRATIONS)}")
    turned_on = []
    with _lock:
        for name in names:
            if _enable(INTEGRATIONS[name], explicit=only is not None):
                turned_on.append(name)
    return turned_on


def _enable(integration: Integration, explicit: bool) -> bool:
    name = integration.name
    if name in _enabled:
        warnings.warn(f"{name} is already instrumented; nothing to do", InstrumentationWarning, stacklevel=3)
        return False
    version = _installed_version(integration.library)
    if version is None:
        if explicit:
            warnings.warn(f"{name}: {integration.library} is not installed", InstrumentationWarning, stacklevel=3)
        return False
    if not integration.supports(version):
        warnings.warn(
            f"{name}: {integration.library} {version} is not supported (tracehouse instruments "
            f"{integration.describe_supported()}); left uninstrumented",
            InstrumentationWarning,
            stacklevel=3,
        )
        return False
    try:
        integration.enable(settings.capture())
    except ImportError as exc:
        warnings.warn(
            f"{name}: its instrumentation is not installed ({exc.name or exc}); pip install 'tracehouse[{name}]'",
            InstrumentationWarning,
            stacklevel=3,
        )
        return False
    _enabled[name] = version
    log.info("instrumented %s %s", integration.library, version)
    return True


def enabled() -> dict[str, str]:
    """The frameworks turned on so far, with their library versions."""
    with _lock:
        return dict(_enabled)

"""The ``opentelemetry-instrument`` route: a distro that sends to tracehouse.

``opentelemetry-instrument python app.py`` loads this distro (the ``opentelemetry_distro``
entry point), which configures tracehouse from the standard ``OTEL_*`` variables (service name,
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``_PROTOCOL`` / ``_HEADERS``) and runs
:func:`tracehouse.instrument.auto`, so that every installed framework is instrumented the way
``auto()`` does it. Instrumentors that other packages register and that ``auto()`` already
turned on are not loaded a second time.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro


class TracehouseDistro(BaseDistro):
    def _configure(self, **kwargs: Any) -> None:
        from tracehouse.instrument.auto import auto
        from tracehouse.instrument.setup import configure

        configure()
        auto()

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        instrumentor = entry_point.load()()
        if getattr(instrumentor, "is_instrumented_by_opentelemetry", False):
            return  # auto() turned it on already
        instrumentor.instrument(**kwargs)

"""Anthropic Python SDK: messages, sync and async, streaming, tool use.

The SDK traces its own API calls with OpenTelemetry (``anthropic.messages.create`` spans with
GenAI-convention attributes: model, tokens including cache reads and writes, stop reason, time
to the first chunk of a stream) through the global tracer provider. This turns on its content
mode when tracehouse's content capture is on, so that prompts and answers are recorded too; the
SDK reads it when a client is created, so create clients after ``auto()``. SDK versions before
its own tracing are not supported (OpenLLMetry's instrumentor covers them; its spans normalize
as well).
"""

from __future__ import annotations

import os

from tracehouse import semconv
from tracehouse.instrument.capture import Capture
from tracehouse.instrument.frameworks import Integration


def enable(capture: Capture) -> None:
    # Content mode is the SDK's own switch; ANTHROPIC_OPEN_TELEMETRY=false (the application's
    # choice) still turns its tracing off.
    os.environ[semconv.ENV_ANTHROPIC_TRACES_CONTENT_MODE] = (
        semconv.ANTHROPIC_CONTENT_MODE_CONTENT if capture.content else semconv.ANTHROPIC_CONTENT_MODE_METADATA
    )


INTEGRATION = Integration(name="anthropic", library="anthropic", supported=((1, 17), (3,)), enable=enable)

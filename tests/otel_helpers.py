"""Spans made by the real OpenTelemetry SDK, encoded by the official OTLP encoder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracehouse import semconv

# Every attribute (and span event) name tracehouse knows, from its one home.
KNOWN_NAMES = frozenset(v for k, v in vars(semconv).items() if k.isupper() and isinstance(v, str))


class Recorder:
    """A tracer provider of its own (the global one is left alone) that keeps finished spans."""

    def __init__(self, service: str = "test-agent", **resource: str):
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service, **resource}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("tests.conventions", "1.0")

    @contextmanager
    def span(self, name: str, **attributes) -> Iterator:
        with self.tracer.start_as_current_span(name, attributes=attributes) as span:
            yield span

    def request(self) -> ExportTraceServiceRequest:
        """Everything recorded so far, as an OTLP export request."""
        return encode_spans(self.exporter.get_finished_spans())

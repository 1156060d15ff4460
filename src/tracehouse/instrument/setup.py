"""``configure()``: connect the OpenTelemetry SDK to tracehouse.

- With no provider configured yet, it creates a TracerProvider (and a LoggerProvider) for the
  service and makes them global; the resource honours ``OTEL_SERVICE_NAME`` and
  ``OTEL_RESOURCE_ATTRIBUTES``.
- If the application already set an SDK TracerProvider, that one is kept and tracehouse adds
  its processors to it: the application's own exporters keep working.
- Spans go over OTLP to a tracehouse server (HTTP ``http://127.0.0.1:4318`` by default, or
  gRPC), or, with ``store=``, straight into a store in this process through the receiver's own
  normalization (for scripts, notebooks and tests).
- Calling it again replaces what the previous call set up (exporter, capture, redaction);
  not calling it at all leaves the API working with whatever OpenTelemetry has (spans are
  no-ops if nothing is configured).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult

from tracehouse import semconv
from tracehouse.instrument import settings
from tracehouse.instrument.api import OWN_SCOPE, RunStamper, current_run
from tracehouse.instrument.capture import DEFAULT_MAX_PAYLOAD_BYTES, Capture, decoded
from tracehouse.instrument.nesting import NestedCalls
from tracehouse.vocabulary import NodeType

log = logging.getLogger(__name__)
DEFAULT_ENDPOINT = "http://127.0.0.1:4318"


class _StoreWriter:
    """Writes OTLP payloads into a store in this process, through the receiver's ingest path."""

    def __init__(self, store: Any, tenant: str = "", retention_days: int = 30):
        from tracehouse.store.retention import RetentionPolicy

        self.store = store
        self.tenant = tenant
        self.retention = RetentionPolicy(store, retention_days)
        self._lock = threading.Lock()

    def write(self, kind: int, payload: bytes, count: int) -> bool:
        from tracehouse.ingest.writer import store_payloads

        try:
            with self._lock:
                store_payloads(self.store, [(kind, self.tenant, payload)], self.retention.for_tenant)
        except Exception:
            log.exception("storing %d items failed", count)
            return False
        return True


class StoreSpanExporter(SpanExporter):
    """Exports spans into a store in this process."""

    def __init__(self, writer: _StoreWriter):
        self.writer = writer

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        from tracehouse.ingest.spool import KIND_TRACES

        ok = self.writer.write(KIND_TRACES, encode_spans(spans).SerializeToString(), len(spans))
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass


class StoreLogExporter(LogRecordExporter):
    """Exports log records into a store in this process."""

    def __init__(self, writer: _StoreWriter):
        self.writer = writer

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        from tracehouse.ingest.spool import KIND_LOGS

        ok = self.writer.write(KIND_LOGS, encode_logs(batch).SerializeToString(), len(batch))
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # each export is written at once


class _RunFilter(logging.Filter):
    """Adds the current run's id to log records (the handler turns it into an attribute), and
    keeps OpenTelemetry's own records out: an exporter reporting its failure through the very
    handler that exports would loop."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("opentelemetry"):
            return False
        info = current_run()
        if info is not None and not hasattr(record, semconv.TRACEHOUSE_RUN_ID):
            setattr(record, semconv.TRACEHOUSE_RUN_ID, info.run_id)
        return True


def cleaned(span: ReadableSpan, wraps_call: bool = False) -> ReadableSpan:
    """Another instrumentor's span with its content treated like tracehouse's own: redacted and
    truncated, or left out when content capture is off. Content is what the receiver stores as
    payload (prompts, answers, tool I/O, ``input.value``...); tracehouse's own spans are
    cleaned when their content is set, and spans without content pass unchanged.
    ``wraps_call``: the span is a model call around another one (see ``nesting``), recorded
    as a step."""
    scope = span.instrumentation_scope
    attributes = span.attributes or {}
    own = scope is not None and scope.name == OWN_SCOPE
    payload = (
        [] if own else [k for k, v in attributes.items() if isinstance(v, str) and semconv.is_payload_attribute(k)]
    )
    if not payload and not wraps_call:
        return span
    capture = settings.capture()
    new = dict(attributes)
    if wraps_call:
        new[semconv.TRACEHOUSE_NODE_TYPE] = NodeType.STEP.value
    for key in payload:
        encoded = capture.encode(decoded(attributes[key]))  # JSON content is masked by path too
        if encoded is None:
            del new[key]
            continue
        new[key] = encoded[0]
        if encoded[1] is not None:
            new[f"{semconv.TRACEHOUSE_TRUNCATED}.{key}"] = encoded[1]
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=new,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=scope,
    )


class _Delegating(SpanProcessor):
    """The processors tracehouse adds, behind one stable processor so that a later
    ``configure()`` can replace them on a provider that cannot remove processors."""

    def __init__(self) -> None:
        self.delegates: list[SpanProcessor] = []
        self.nested_calls = NestedCalls()

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.nested_calls.started(span)
        for d in self.delegates:
            d.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        span = cleaned(span, self.nested_calls.ended(span))
        for d in self.delegates:
            d.on_end(span)

    def shutdown(self) -> None:
        for d in self.delegates:
            d.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(d.force_flush(timeout_millis) for d in self.delegates)


@dataclass
class Configuration:
    provider: TracerProvider
    exporter: SpanExporter | None
    capture: Capture
    logger_provider: LoggerProvider | None = None
    log_handler: logging.Handler | None = None

    def flush(self, timeout_millis: int = 30000) -> bool:
        """Export everything recorded so far."""
        ok = self.provider.force_flush(timeout_millis)
        if self.logger_provider is not None:
            ok = self.logger_provider.force_flush(timeout_millis) and ok
        return ok


_lock = threading.Lock()
_processor: _Delegating | None = None
_current: Configuration | None = None


def _otlp_exporters(
    endpoint: str | None, protocol: str | None, headers: dict[str, str] | None
) -> tuple[SpanExporter, LogRecordExporter]:
    """OTLP exporters for spans and logs, honouring the standard OTEL_EXPORTER_OTLP_* variables."""
    protocol = (
        protocol
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    endpoint = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        target = (endpoint or "http://127.0.0.1:4317").removeprefix("http://")
        return (
            OTLPSpanExporter(endpoint=target, insecure=True, headers=headers),
            OTLPLogExporter(endpoint=target, insecure=True, headers=headers),
        )
    if protocol not in ("http/protobuf", "http"):
        raise ValueError(f"unsupported OTLP protocol {protocol!r}: use 'http/protobuf' or 'grpc'")
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = (endpoint or DEFAULT_ENDPOINT).rstrip("/").removesuffix("/v1/traces")
    return (
        OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=headers),
        OTLPLogExporter(endpoint=f"{base}/v1/logs", headers=headers),
    )


def configure(
    service_name: str | None = None,
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    api_key: str | None = None,
    headers: dict[str, str] | None = None,
    store: Any = None,
    capture_content: bool | None = None,
    redact: bool = True,
    redact_patterns: Iterable[str] = (),
    redact_paths: Iterable[str] = (),
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    exporter: SpanExporter | None = None,
    log_exporter: LogRecordExporter | None = None,
    logs: bool = True,
    batch: bool = True,
) -> Configuration:
    """Set up OpenTelemetry to record agents into tracehouse; see the module documentation.

    ``store``: a store DSN or an open :class:`tracehouse.store.Store` to write into directly
    instead of exporting. ``exporter`` / ``log_exporter``: any exporters instead (tests use the
    in-memory ones). ``logs``: send records of the standard ``logging`` module too, correlated
    with the current span and run (a handler on the root logger).
    ``capture_content``: record prompts, answers and tool I/O (default: on, unless
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` says false). Redaction is on by default.
    """
    global _processor, _current
    with _lock:
        capture = Capture.from_options(capture_content, redact, redact_patterns, redact_paths, max_payload_bytes)
        settings.set_capture(capture)
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            attributes = {semconv.SERVICE_NAME: service_name} if service_name else {}
            provider = TracerProvider(resource=Resource.create(attributes))
            trace.set_tracer_provider(provider)
        if _processor is None or _current is None or _current.provider is not provider:
            _processor = _Delegating()
            provider.add_span_processor(_processor)
        if store is not None:
            if isinstance(store, str):
                from tracehouse.store import Store

                store = Store.open(store)
            writer = _StoreWriter(store)
            exporter = exporter or StoreSpanExporter(writer)
            log_exporter = log_exporter or StoreLogExporter(writer)
        elif exporter is None or (logs and log_exporter is None):
            merged = dict(headers or {})
            if api_key:
                merged["authorization"] = f"Bearer {api_key}"
            span_otlp, log_otlp = _otlp_exporters(endpoint, protocol, merged or None)
            exporter = exporter or span_otlp
            log_exporter = log_exporter or log_otlp
        old = list(_processor.delegates)
        reused = _current is not None and _current.exporter is exporter
        export = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        _processor.delegates = [RunStamper(), export]
        for processor in old:
            # What the old processors hold is exported; their exporter is shut down unless the
            # new configuration uses the same one.
            processor.force_flush()
            if not reused:
                processor.shutdown()
        logger_provider, handler = _configure_logs(provider, log_exporter if logs else None, batch)
        _current = Configuration(provider, exporter, capture, logger_provider, handler)
        return _current


def shutdown() -> None:
    """Undo ``configure()``: export what is buffered, stop tracehouse's processors, and remove
    its logging handler. The tracer provider stays (OpenTelemetry allows setting it once)."""
    global _current
    with _lock:
        if _current is None:
            return
        if _processor is not None:
            _processor.force_flush()
            for processor in _processor.delegates:
                processor.shutdown()
            _processor.delegates = []
        _configure_logs(_current.provider, None, batch=False)
        _current = None
        settings.set_capture(None)


def _configure_logs(
    provider: TracerProvider, exporter: LogRecordExporter | None, batch: bool
) -> tuple[LoggerProvider | None, logging.Handler | None]:
    """(Re)attach the logging handler that sends records to ``exporter``."""
    root = logging.getLogger()
    if _current is not None and _current.log_handler is not None:
        root.removeHandler(_current.log_handler)
        if _current.logger_provider is not None:
            _current.logger_provider.shutdown()
    if exporter is None:
        return None, None
    logger_provider = LoggerProvider(resource=provider.resource)
    processor = BatchLogRecordProcessor(exporter) if batch else SimpleLogRecordProcessor(exporter)
    logger_provider.add_log_record_processor(processor)
    with warnings.catch_warnings():  # the SDK's handler is deprecated in favour of a separate package
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(logger_provider=logger_provider)
    handler.addFilter(_RunFilter())
    root.addHandler(handler)
    return logger_provider, handler

"""The transport-independent receiver: authenticate, decode, validate, make durable, answer.

Both the gRPC service and the HTTP routes call :meth:`Receiver.export`. It returns only once
the accepted items are in the spool (fsync'd), which is what makes the acknowledgement safe.
"""

from __future__ import annotations

# API keys and tenants are tracehouse.auth's; Unauthenticated and parse_api_keys stay importable here.
from tracehouse.auth import Auth, Unauthenticated, parse_api_keys  # noqa: F401
from tracehouse.ingest import otlp
from tracehouse.ingest.checks import Checker, Limits
from tracehouse.ingest.metrics import Metrics
from tracehouse.ingest.spool import KIND_LOGS, KIND_TRACES, Spool, SpoolFull

DEFAULT_MAX_BYTES = 20 << 20  # a request body, after decompression
RETRY_AFTER_SECONDS = 2


class Backpressure(Exception):
    """The durable buffer is full; the client should retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = RETRY_AFTER_SECONDS):
        super().__init__(message)
        self.retry_after = retry_after


class TooLarge(Exception):
    """The request body is over the size limit."""


class Receiver:
    def __init__(
        self,
        spool: Spool,
        auth: Auth,
        metrics: Metrics,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        limits: Limits | None = None,
    ):
        self.spool = spool
        self.auth = auth
        self.metrics = metrics
        self.max_bytes = max_bytes
        self.checker = Checker(limits)
        self.accepting = True

    def export(self, signal: otlp.Signal, body: bytes, content_type: str, tenant: str, transport: str) -> bytes:
        """Decode, validate and spool one export request; return the response body.

        Raises :class:`otlp.BadRequest`, :class:`TooLarge` or :class:`Backpressure`.
        """
        if len(body) > self.max_bytes:
            raise TooLarge(f"the request is {len(body)} bytes, over the {self.max_bytes}-byte limit")
        request = otlp.decode(signal, body, content_type)
        size = len(body) if content_type == otlp.PROTOBUF else None  # a JSON body is larger than its request
        checked = (self.checker.traces if signal is otlp.TRACES else self.checker.logs)(request, size)
        self.metrics.received.labels(signal.name, transport).inc(checked.accepted + checked.rejected)
        for reason, (count, _) in checked.rejections.items():
            self.metrics.rejected.labels(signal.name, reason).inc(count)
        for limit, (count, _) in checked.limited.items():
            self.metrics.limited.labels(signal.name, limit).inc(count)
        if checked.accepted:
            if not self.accepting:
                self.metrics.rejected.labels(signal.name, "shutting_down").inc(checked.accepted)
                raise Backpressure("the server is shutting down")
            # A protobuf body the checks left as it was is spooled as it came; else re-encoded.
            payload = body if content_type == otlp.PROTOBUF and not checked.changed else request.SerializeToString()
            kind = KIND_TRACES if signal is otlp.TRACES else KIND_LOGS
            try:
                self.spool.append(kind, tenant, payload)
            except SpoolFull as exc:
                self.metrics.rejected.labels(signal.name, "backpressure").inc(checked.accepted)
                raise Backpressure(str(exc)) from None
            self.metrics.accepted.labels(signal.name).inc(checked.accepted)
        return otlp.response(signal, checked.rejected, checked.message(signal.items), content_type)

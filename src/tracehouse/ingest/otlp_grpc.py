"""OTLP over gRPC: the TraceService and LogsService Export methods."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo

from tracehouse.auth import Unauthenticated
from tracehouse.ingest import otlp
from tracehouse.ingest.receiver import Backpressure, Receiver, TooLarge

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


def _export(receiver: Receiver, signal: otlp.Signal):
    def handle(body: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = {key.lower(): value for key, value in context.invocation_metadata()}
        try:
            tenant = receiver.auth.tenant(metadata.get("authorization"), metadata.get("x-api-key"))
            answer = receiver.export(signal, body, otlp.PROTOBUF, tenant, "grpc")
        except Unauthenticated as exc:
            _fail(receiver, context, grpc.StatusCode.UNAUTHENTICATED, str(exc), "unauthenticated")
        except otlp.BadRequest as exc:
            _fail(receiver, context, grpc.StatusCode.INVALID_ARGUMENT, str(exc), "malformed")
        except TooLarge as exc:
            _fail(receiver, context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), "too_large")
        except Backpressure as exc:
            # Official exporters read the delay from google.rpc.retryinfo-bin; the status details
            # carry it too, the way the Collector sends it.
            retry = RetryInfo(retry_delay=Duration(seconds=exc.retry_after))
            status = otlp.error_status(otlp.UNAVAILABLE, str(exc), [retry])
            context.set_trailing_metadata(
                (
                    ("google.rpc.retryinfo-bin", retry.SerializeToString()),
                    ("grpc-status-details-bin", status.SerializeToString()),
                )
            )
            _fail(receiver, context, grpc.StatusCode.UNAVAILABLE, str(exc), "backpressure")
        receiver.metrics.requests.labels("grpc", "ok").inc()
        return answer

    return grpc.unary_unary_rpc_method_handler(handle)  # raw bytes in and out: we decode ourselves


def _fail(receiver: Receiver, context: Any, code: grpc.StatusCode, message: str, outcome: str) -> None:
    receiver.metrics.requests.labels("grpc", outcome).inc()
    context.abort(code, message)


def start_grpc(receiver: Receiver, host: str, port: int, *, workers: int = 8) -> tuple[grpc.Server, int]:
    """Start the OTLP/gRPC server; return it and the port it bound (``port`` 0 picks one)."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otlp-grpc"),
        options=[
            ("grpc.max_receive_message_length", receiver.max_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(TRACE_SERVICE, {"Export": _export(receiver, otlp.TRACES)}),
            grpc.method_handlers_generic_handler(LOGS_SERVICE, {"Export": _export(receiver, otlp.LOGS)}),
        )
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if not bound:
        raise OSError(f"cannot listen for OTLP/gRPC on {host}:{port}")
    server.start()
    return server, bound

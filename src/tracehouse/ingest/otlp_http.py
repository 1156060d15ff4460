"""OTLP over HTTP: ``POST /v1/traces`` and ``POST /v1/logs``, protobuf or JSON, gzip or not."""

from __future__ import annotations

import zlib

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from tracehouse.auth import Unauthenticated
from tracehouse.ingest import otlp
from tracehouse.ingest.receiver import Backpressure, Receiver, TooLarge

router = APIRouter()


@router.post("/v1/traces", include_in_schema=False)
async def export_traces(request: Request) -> Response:
    return await _export(request, otlp.TRACES)


@router.post("/v1/logs", include_in_schema=False)
async def export_logs(request: Request) -> Response:
    return await _export(request, otlp.LOGS)


def _status(http_code: int, rpc_code: int, message: str, content_type: str, headers: dict | None = None) -> Response:
    body = otlp.status_body(otlp.error_status(rpc_code, message), content_type)
    return Response(body, status_code=http_code, media_type=content_type, headers=headers)


async def _export(request: Request, signal: otlp.Signal) -> Response:
    receiver: Receiver = request.app.state.receiver
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()

    def fail(http_code: int, rpc_code: int, message: str, outcome: str, headers: dict | None = None) -> Response:
        receiver.metrics.requests.labels("http", outcome).inc()
        reply_type = content_type if content_type in (otlp.PROTOBUF, otlp.JSON) else otlp.JSON
        return _status(http_code, rpc_code, message, reply_type, headers)

    if content_type not in (otlp.PROTOBUF, otlp.JSON):
        return fail(
            415,
            otlp.INVALID_ARGUMENT,
            f"unsupported content type {content_type!r}; send {otlp.PROTOBUF} or {otlp.JSON}",
            "malformed",
        )
    try:
        tenant = receiver.auth.tenant(request.headers.get("authorization"), request.headers.get("x-api-key"))
    except Unauthenticated as exc:
        return fail(401, otlp.UNAUTHENTICATED, str(exc), "unauthenticated")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        return fail(415, otlp.INVALID_ARGUMENT, f"unsupported content encoding {encoding!r}; use gzip", "malformed")
    try:
        body = await _read(request, receiver.max_bytes, gzip=encoding == "gzip")
        answer = await run_in_threadpool(receiver.export, signal, body, content_type, tenant, "http")
    except TooLarge as exc:
        return fail(413, otlp.RESOURCE_EXHAUSTED, str(exc), "too_large")
    except otlp.BadRequest as exc:
        return fail(400, otlp.INVALID_ARGUMENT, str(exc), "malformed")
    except Backpressure as exc:
        return fail(503, otlp.UNAVAILABLE, str(exc), "backpressure", {"Retry-After": str(exc.retry_after)})
    receiver.metrics.requests.labels("http", "ok").inc()
    return Response(answer, media_type=content_type)


async def _read(request: Request, limit: int, gzip: bool) -> bytes:
    """The body, decompressed, refusing to hold more than ``limit`` bytes of either form."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if gzip else None
    out = bytearray()
    received = 0
    async for chunk in request.stream():  # chunked bodies arrive piece by piece
        received += len(chunk)
        if received > limit:
            raise TooLarge(f"the request body is over the {limit}-byte limit")
        if inflater is None:
            out += chunk
            continue
        try:
            out += inflater.decompress(chunk, limit + 1 - len(out))
        except zlib.error as exc:
            raise otlp.BadRequest(f"the gzip body cannot be decompressed: {exc}") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise TooLarge(f"the request decompresses to more than the {limit}-byte limit")
    if inflater is not None:
        if not inflater.eof and received:
            raise otlp.BadRequest("the gzip body is truncated")
        out += inflater.flush()
    return bytes(out)

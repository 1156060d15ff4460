"""``tracehouse serve``: one process that owns the store, receives OTLP, and serves the API."""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn

from tracehouse.api.app import create_app
from tracehouse.auth import Auth
from tracehouse.ingest.checks import Limits
from tracehouse.ingest.metrics import Metrics
from tracehouse.ingest.otlp_grpc import start_grpc
from tracehouse.ingest.receiver import DEFAULT_MAX_BYTES, Receiver
from tracehouse.ingest.spool import Spool
from tracehouse.ingest.writer import DEFAULT_INTERVAL, Writer
from tracehouse.model import DEFAULT_RUN_IDLE_TIMEOUT, DEFAULT_TTL_DAYS
from tracehouse.store import DEFAULT_DSN, Store, StoreAddress, StoreError, parse_dsn
from tracehouse.store.retention import RetentionPolicy

log = logging.getLogger("tracehouse.server")


@dataclass
class Settings:
    store: str = DEFAULT_DSN
    cluster: str | None = None
    host: str = "127.0.0.1"
    grpc_port: int = 4317
    http_port: int = 4318
    api_keys: dict[str, str] | None = None
    retention_days: int = DEFAULT_TTL_DAYS
    payload_retention_days: int | None = None
    spool: str | None = None  # default: beside an embedded store, else ./tracehouse-spool
    spool_max_bytes: int = 1 << 30
    max_request_bytes: int = DEFAULT_MAX_BYTES
    batch_interval: float = DEFAULT_INTERVAL
    normalize: str = "auto"  # auto (the engine where the store is embedded), engine or python
    limits: Limits = field(default_factory=Limits)  # what the receiver accepts per span
    run_idle_timeout: float = DEFAULT_RUN_IDLE_TIMEOUT  # seconds until a run without its root is incomplete

    def spool_dir(self, address: StoreAddress) -> str:
        if self.spool:
            return os.path.abspath(self.spool)
        if address.embedded and address.path:
            return address.path.rstrip("/") + "-spool"
        return os.path.abspath("tracehouse-spool")


def run(settings: Settings, on_ready: Callable[[str, str], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then stop taking data and store what was acknowledged.
    ``on_ready(http_url, grpc_address)`` is called once both ports listen."""
    auth = Auth(settings.api_keys or {})
    if not auth.required and settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "no API keys are configured and the server listens on %s: anyone who can reach it can "
            "write; set --api-keys",
            settings.host,
        )
    address = parse_dsn(settings.store)
    store: Store | None = None

    def open_store() -> Store:
        return Store.open(settings.store, cluster=settings.cluster, run_idle_timeout=settings.run_idle_timeout)

    try:
        store = open_store()
    except StoreError as exc:
        if address.embedded:
            raise
        # A server that is down must not stop us from taking data: it waits in the spool.
        log.warning("%s; accepting into the spool and connecting when the store is back", exc)
    spool = Spool(settings.spool_dir(address), max_bytes=settings.spool_max_bytes)
    metrics = Metrics()
    metrics.watch_spool(lambda: spool.pending_bytes, lambda: spool.pending_records, spool.max_bytes)
    retention = RetentionPolicy(store, settings.retention_days, settings.payload_retention_days)
    writer = Writer(
        store or open_store,
        spool,
        retention,
        metrics,
        interval=settings.batch_interval,
        engine_normalize={"auto": None, "engine": True, "python": False}[settings.normalize],
    )
    metrics.watch_quarantine(writer.quarantine.stats)
    metrics.watch_writer(lambda: writer.healthy)
    receiver = Receiver(spool, auth, metrics, max_bytes=settings.max_request_bytes, limits=settings.limits)
    writer.start()
    grpc_server = None
    try:
        grpc_server, grpc_port = start_grpc(receiver, settings.host, settings.grpc_port)
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, settings.http_port))
        sock.listen(1024)  # listening before the ready line: early clients wait in the backlog
        http_port = sock.getsockname()[1]
        app = create_app(receiver, writer)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=5))

        # uvicorn handles SIGINT/SIGTERM while it runs, then restores the handlers it found and
        # raises the signal again. Ours (also in force before uvicorn starts) ask it to exit and
        # nothing more, so the drain below always runs.
        def stop(signum: int, frame: object) -> None:
            log.info("signal %d received; stopping", signum)
            server.should_exit = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        print(
            f"tracehouse serve: OTLP/gRPC on {settings.host}:{grpc_port}, OTLP/HTTP and API on "
            f"http://{settings.host}:{http_port}, store {address.describe()}, spool {spool.directory}"
            + ("" if auth.required else ", single tenant (no API keys)"),
            flush=True,
        )
        if on_ready is not None:
            on_ready(f"http://{settings.host}:{http_port}", f"{settings.host}:{grpc_port}")
        try:
            server.run(sockets=[sock])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        receiver.accepting = False
        if grpc_server is not None:
            grpc_server.stop(grace=5).wait()
        writer.stop(timeout=30)
        left = spool.pending_bytes
        spool.close()
        if writer.store is not None:
            writer.store.close()
        print(
            f"tracehouse serve: stopped; {left} bytes left in the spool for the next start"
            if left
            else "tracehouse serve: stopped; everything acknowledged is stored",
            flush=True,
        )

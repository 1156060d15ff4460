"""The HTTP application on the ``tracehouse serve`` HTTP port: OTLP/HTTP, health, metrics, the
JSON API, the live stream and the web page."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from tracehouse import __version__
from tracehouse.api.agents import router as agents_router
from tracehouse.api.live import LiveHub
from tracehouse.api.live import router as live_router
from tracehouse.api.more import router as more_router
from tracehouse.api.quarantine import router as quarantine_router
from tracehouse.api.runs import router as runs_router
from tracehouse.api.stats import router as stats_router
from tracehouse.ingest.otlp_http import router as otlp_router
from tracehouse.ingest.receiver import Receiver
from tracehouse.ingest.writer import Writer
from tracehouse.responses import NotFound
from tracehouse.web import install as install_web


def create_app(receiver: Receiver, writer: Writer) -> FastAPI:
    app = FastAPI(title="tracehouse", version=__version__, summary="The flight recorder for AI agents")
    app.state.receiver = receiver
    app.state.writer = writer
    app.include_router(otlp_router)
    app.include_router(agents_router)
    app.include_router(runs_router)
    app.include_router(stats_router)
    app.include_router(more_router)
    app.include_router(quarantine_router)
    app.state.live = LiveHub()
    writer.listeners.append(app.state.live.publish)
    writer.idle_runs.listeners.append(app.state.live.publish_incomplete)
    writer.listening = app.state.live.has_subscribers
    app.include_router(live_router)

    @app.exception_handler(NotFound)
    def not_found(request: Request, exc: NotFound) -> Response:
        """What the read service did not find (for the request's tenant) is a 404."""
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz() -> Response:
        """Ready to accept data: accepting, the spool has room, and the store takes writes.
        Quarantined requests are a warning, not a reason to turn traffic away."""
        spool = receiver.spool
        problems = []
        if not receiver.accepting:
            problems.append("shutting down")
        if spool.pending_bytes >= spool.max_bytes * 0.9:
            problems.append(f"spool nearly full ({spool.pending_bytes} of {spool.max_bytes} bytes)")
        if not writer.healthy:
            problems.append("the store refuses writes; data waits in the spool")
        # A problem for an operator that does not stop ingest: ready, with a warning.
        quarantined, _ = writer.quarantine.stats()
        warnings = [f"{quarantined} request(s) quarantined: see tracehouse quarantine list"] if quarantined else []
        body = {
            "status": "ok" if not problems else "unavailable",
            "problems": problems,
            "warnings": warnings,
            "spool_pending_bytes": spool.pending_bytes,
            "quarantined": quarantined,
        }
        return JSONResponse(body, status_code=200 if not problems else 503)

    @app.get("/metrics", tags=["operations"])
    def metrics() -> Response:
        """Prometheus metrics of the receiver and the writer."""
        return Response(receiver.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    install_web(app)
    return app

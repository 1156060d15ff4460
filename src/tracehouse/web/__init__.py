"""The web page on the HTTP port of ``tracehouse serve``: server-rendered HTML at ``/``.

- :mod:`tracehouse.web.pages`: the routes (agents, sign-in), Jinja2 templates with
  autoescaping, so every value from the data is shown as text;
- :mod:`tracehouse.web.runs_page`: the runs view at ``/``;
- :mod:`tracehouse.web.more_pages`: a conversation, an agent, and two runs compared;
- :mod:`tracehouse.web.security`: the headers every response carries (Content-Security-Policy
  with no inline script or style, nosniff, Referrer-Policy, no framing);
- ``static/``: the stylesheet, the page's own script and vendored htmx, served from the package
  at ``/static``: the page asks no other host for anything.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from tracehouse.web.more_pages import router as more_router
from tracehouse.web.pages import router
from tracehouse.web.run_page import router as run_router
from tracehouse.web.runs_page import router as runs_router
from tracehouse.web.security import SecurityHeaders

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Serve the page and its assets, and put the security headers on every response (but
    FastAPI's own API docs pages, which load their scripts from elsewhere)."""
    app.include_router(router)
    app.include_router(runs_router)
    app.include_router(run_router)
    app.include_router(more_router)  # conversation, agent and compare pages
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SecurityHeaders, skip=tuple(p for p in (app.docs_url, app.redoc_url) if p))

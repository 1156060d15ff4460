"""The conversation, agent and compare pages, on the read service like the API:

- ``/conversations/{id}``: every run of a conversation in order, as one chat transcript, each
  run linked to its page;
- ``/agents/{name}``: an agent's runs, success rate, p50/p95 duration, tokens and cost over
  time (charts drawn here as SVG, no script), its slowest and most failing nodes, its LLM usage
  by model;
- ``/compare?a=RUN&b=RUN``: two runs' steps aligned side by side, with what differs.

What the tenant does not have (an unknown id, or another tenant's) is a 404 page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tracehouse.responses import NotFound
from tracehouse.store.reads import duration_text
from tracehouse.web.pages import _page, not_found, reader, templates

router = APIRouter(include_in_schema=False)

templates.filters.update(path_part=lambda value: quote(str(value), safe=""))


@router.get("/conversations/{conversation_id:path}")
def conversation_page(request: Request, conversation_id: str) -> Response:
    """A conversation's runs, oldest first, as one transcript."""
    found = reader(request)
    if isinstance(found, Response):
        return found
    viewer, reads = found
    try:
        conversation = reads.conversation_runs(conversation_id)
    except NotFound:
        return not_found(request, viewer, f"conversation {conversation_id!r}")
    return _page(request, viewer, "conversation.html", conversation=conversation)


@router.get("/agents/{name:path}")
def agent_page(request: Request, name: str) -> Response:
    """One agent: outcomes, charts over time, nodes, models, latest runs."""
    found = reader(request)
    if isinstance(found, Response):
        return found
    viewer, reads = found
    try:
        agent = reads.agent(name)
    except NotFound:
        return not_found(request, viewer, f"agent {name!r}")
    periods = agent.timeline
    labels = [_period_label(p.start, agent.bucket) for p in periods]
    charts = [
        Chart.bars(
            "Runs",
            labels,
            [[p.completed, p.failed, p.runs - p.completed - p.failed] for p in periods],
            ("completed", "failed", "other"),
            _count,
        ),
        Chart.lines(
            "Duration (p50, p95)",
            labels,
            [[p.p50_seconds for p in periods], [p.p95_seconds for p in periods]],
            ("p50", "p95"),
            _seconds_text,
        ),  # fmt: skip
        Chart.bars("Tokens", labels, [[p.tokens] for p in periods], ("tokens",), _count),
        Chart.bars("Cost", labels, [[p.cost_usd] for p in periods], ("cost",), lambda v: f"${v:.4f}"),
    ]
    return _page(request, viewer, "agent_page.html", active="agents", agent=agent, charts=charts)


@router.get("/compare")
def compare_page(request: Request, a: str = "", b: str = "") -> Response:
    """Two runs side by side; without both ids, the form asking for them."""
    found = reader(request)
    if isinstance(found, Response):
        return found
    viewer, reads = found
    a, b = a.strip(), b.strip()
    comparison = None
    if a and b:
        try:
            comparison = reads.compare(a, b)
        except NotFound as exc:
            return not_found(request, viewer, str(exc).removesuffix(" not found"))
    return _page(request, viewer, "compare.html", a=a, b=b, comparison=comparison)


# --- charts: SVG drawn on the server, coloured by the stylesheet ---------------------------------

WIDTH, HEIGHT = 640, 160
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 8, 22


@dataclass
class Shape:
    kind: str  # rect | polyline | circle
    css: str  # the series' class
    title: str  # shown on hover
    x: float = 0
    y: float = 0
    w: float = 0
    h: float = 0
    points: str = ""


@dataclass
class Chart:
    title: str
    series: tuple[str, ...]
    shapes: list[Shape]
    ticks: list[tuple[float, str]]  # (y, label) of the value axis
    labels: list[tuple[float, str]]  # (x, label) of the time axis
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom: float = HEIGHT - BOTTOM
    right: float = WIDTH - RIGHT

    @staticmethod
    def _frame(values: list[float], fmt: Any) -> tuple[float, list[tuple[float, str]]]:
        top = max([v for v in values if v] or [1.0])
        return top, [(_y(v, top), fmt(v)) for v in (0, top / 2, top)]

    @classmethod
    def bars(cls, title: str, labels: list[str], stacks: list[list[float]], series: tuple[str, ...], fmt: Any) -> Chart:
        """A stacked bar per period."""
        top, ticks = cls._frame([sum(s) for s in stacks], fmt)
        slot = (WIDTH - LEFT - RIGHT) / max(len(stacks), 1)
        width = max(min(slot * 0.7, 48), 2)
        shapes = []
        for i, (label, stack) in enumerate(zip(labels, stacks, strict=True)):
            x = LEFT + slot * i + (slot - width) / 2
            base = 0.0
            for name, value in zip(series, stack, strict=True):
                if value <= 0:
                    continue
                y0, y1 = _y(base, top), _y(base + value, top)
                shapes.append(Shape("rect", name, f"{label}: {fmt(value)} {name}", x=x, y=y1, w=width, h=y0 - y1))
                base += value
        return cls(title, series, shapes, ticks, _time_labels(labels, slot))

    @classmethod
    def lines(cls, title: str, labels: list[str], lines: list[list[float]], series: tuple[str, ...], fmt: Any) -> Chart:
        """A line per series over the periods, a dot per value."""
        top, ticks = cls._frame([v for line in lines for v in line], fmt)
        slot = (WIDTH - LEFT - RIGHT) / max(len(labels), 1)
        shapes = []
        for name, line in zip(series, lines, strict=True):
            xy = [(LEFT + slot * (i + 0.5), _y(v, top)) for i, v in enumerate(line)]
            if len(xy) > 1:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
                shapes.append(Shape("polyline", name, name, points=points))
            for (x, y), label, value in zip(xy, labels, line, strict=True):
                shapes.append(Shape("circle", name, f"{label}: {name} {fmt(value)}", x=x, y=y))
        return cls(title, series, shapes, ticks, _time_labels(labels, slot))


def _y(value: float, top: float) -> float:
    return HEIGHT - BOTTOM - (HEIGHT - BOTTOM - TOP) * (value / top if top else 0)


def _time_labels(labels: list[str], slot: float) -> list[tuple[float, str]]:
    """At most six labels along the time axis, evenly spread."""
    if not labels:
        return []
    step = max(1, -(-len(labels) // 6))
    return [(LEFT + slot * (i + 0.5), labels[i]) for i in range(0, len(labels), step)]


def _period_label(start: datetime, bucket: str) -> str:
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    return start.strftime("%m-%d %H:00" if bucket == "hour" else "%Y-%m-%d")


def _seconds_text(value: float) -> str:
    return duration_text(int(value * 1e9))


def _count(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"

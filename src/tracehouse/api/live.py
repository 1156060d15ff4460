"""``/ws/events``: runs as they happen, pushed over a WebSocket.

The writer reports each stored batch (:meth:`LiveHub.publish`, called from its thread); the hub
turns it into events and hands them to every subscriber whose filters match, on the server's
event loop:

- ``execution_started``: the first time a run is seen (spans of a run arrive as they end, so
  this comes with the first finished node, or with the run itself for a run without nodes);
- ``node_executed``: each finished node, in start order;
- ``execution_completed`` / ``execution_failed``: when the run's own span arrives (a cancelled
  run is ``execution_failed`` with status ``cancelled``);
- ``execution_incomplete``: when the writer's sweep finds that a run whose own span has not
  arrived went quiet (no span for the run idle timeout), with the end of its latest span. Its
  own span may still arrive: then ``execution_completed`` or ``execution_failed`` follows.

Often only the run's own span names its agent, and it ends (and arrives) last. Events of a run
stored before its agent is known are held; when the run's span arrives, subscribers following
that agent get them first, in order, then the completion.

Query parameters: ``agent``, ``run_id``; ``api_key`` (or the usual headers) when the server has
keys, since browsers cannot set headers on a WebSocket, or the web page's sign-in cookie (then
only from a page of the server's own origin); without a valid one the handshake is refused
(HTTP 403). A slow subscriber loses events rather than slowing the writer (its queue
holds 10,000).
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from tracehouse.api.agents import request_tenant, same_origin
from tracehouse.auth import Unauthenticated
from tracehouse.model import DEFAULT_TENANT, Event, Node, Status
from tracehouse.store import IdleRun

router = APIRouter()
_SEEN_RUNS = 100_000  # runs remembered as started
_HELD_RUNS = 10_000  # runs whose agent is not known yet, their events held for agent filters
_QUEUE = 10_000
_LATE = "late"  # marks an event re-sent, once its run's agent is known, to agent subscribers


@dataclass
class _Subscriber:
    tenant: str
    agent: str | None
    run_id: str | None
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(_QUEUE))

    def wants(self, message: dict[str, Any]) -> bool:
        if message.get(_LATE) and self.agent is None:
            return False  # it had this event when it was first stored
        return (
            message["tenant"] == self.tenant
            and (self.run_id is None or message["run_id"] == self.run_id)
            and (self.agent is None or message["agent"] == self.agent)
        )


def _node(node: Node) -> dict[str, Any]:
    return {
        "id": node.span_id,
        "name": node.name,
        "type": node.type.value,
        "status": node.status.value,
        "started_at": node.started_at.isoformat(),
        "duration_ms": node.duration_ns / 1e6,
        "model": node.model,
        "input_tokens": node.usage.input_tokens,
        "output_tokens": node.usage.output_tokens,
        "cost_usd": node.cost_usd,
        "error": node.status_message,
    }


class LiveHub:
    def __init__(self) -> None:
        self._subscribers: list[_Subscriber] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._agents: dict[tuple[str, str], str] = {}
        self._held: OrderedDict[tuple[str, str], list[dict[str, Any]]] = OrderedDict()

    def _emit(self, out: list[dict[str, Any]], key: tuple[str, str], message: dict[str, Any]) -> None:
        out.append(message)
        if not message["agent"]:
            self._held.setdefault(key, []).append(message)
            self._held.move_to_end(key)
            if len(self._held) > _HELD_RUNS:
                self._held.popitem(last=False)

    def messages(self, nodes: Sequence[Node]) -> list[dict[str, Any]]:
        """A batch's events, in order: starts, nodes by start, then completions."""
        out: list[dict[str, Any]] = []
        roots = {(n.tenant, n.run_id): n for n in nodes if n.run_root}
        for key, root in roots.items():
            self._agents[key] = root.agent_name
        for node in sorted(nodes, key=lambda n: n.started_at):
            key = (node.tenant, node.run_id)
            if not node.run_id:
                continue
            agent = self._agents.get(key) or node.agent_name
            if key not in self._started:
                self._started[key] = None
                if len(self._started) > _SEEN_RUNS:
                    old, _ = self._started.popitem(last=False)
                    self._agents.pop(old, None)
                started = {"type": "execution_started", "tenant": node.tenant, "run_id": node.run_id, "agent": agent}
                self._emit(out, key, started)
            if not node.run_root:
                self._emit(
                    out,
                    key,
                    {
                        "type": "node_executed",
                        "tenant": node.tenant,
                        "run_id": node.run_id,
                        "agent": agent,
                        "node": _node(node),
                    },
                )
        for (tenant, run_id), root in roots.items():
            for held in self._held.pop((tenant, run_id), []):
                out.append({**held, "agent": root.agent_name, _LATE: True})
            kind = "execution_completed" if root.status is Status.COMPLETED else "execution_failed"
            out.append(
                {
                    "type": kind,
                    "tenant": tenant,
                    "run_id": run_id,
                    "agent": root.agent_name,
                    "status": root.status.value,
                    "duration_ms": root.duration_ns / 1e6,
                    "error": root.status_message,
                }
            )
        return out

    def incomplete_messages(self, runs: Sequence[IdleRun]) -> list[dict[str, Any]]:
        """The events of runs that turned incomplete. A run whose agent its row names releases
        the events held for that agent's followers first, as its own span would."""
        out: list[dict[str, Any]] = []
        for run in runs:
            agent = run.agent_name  # its spans' (only a root sets the hub's)
            if agent:
                out += [{**held, "agent": agent, _LATE: True} for held in self._held.pop((run.tenant, run.run_id), [])]
            out.append(
                {
                    "type": "execution_incomplete",
                    "tenant": run.tenant,
                    "run_id": run.run_id,
                    "agent": agent,
                    "status": Status.INCOMPLETE.value,
                    "duration_ms": run.duration_ns / 1e6,
                    "last_span_at": run.last_span_at.replace(tzinfo=UTC).isoformat(),
                    "error": "",
                }
            )
        return out

    def publish(self, nodes: Sequence[Node], events: Sequence[Event] = ()) -> None:
        """Called by the writer after it stored a batch (from its own thread)."""
        with self._lock:
            messages = self.messages(nodes)
            subscribers = list(self._subscribers)
        self._send(messages, subscribers)

    def publish_incomplete(self, runs: Sequence[IdleRun]) -> None:
        """Called by the writer's sweep with the runs it turned incomplete (from its thread)."""
        with self._lock:
            messages = self.incomplete_messages(runs)
            subscribers = list(self._subscribers)
        self._send(messages, subscribers)

    def _send(self, messages: list[dict[str, Any]], subscribers: list[_Subscriber]) -> None:
        loop = self._loop
        if not messages or not subscribers or loop is None:
            return
        for message in messages:
            for subscriber in subscribers:
                if subscriber.wants(message):
                    loop.call_soon_threadsafe(_offer, subscriber.queue, message)

    def has_subscribers(self) -> bool:
        return bool(self._subscribers)

    def subscribe(self, subscriber: _Subscriber) -> None:
        self._loop = asyncio.get_running_loop()
        with self._lock:
            self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: _Subscriber) -> None:
        with self._lock:
            self._subscribers.remove(subscriber)


def _offer(queue: asyncio.Queue, message: dict[str, Any]) -> None:
    if not queue.full():
        queue.put_nowait(message)


@router.websocket("/ws/events")
async def events(
    websocket: WebSocket,
    agent: str | None = None,
    run_id: str | None = None,
    api_key: str | None = None,
    tenant: str | None = None,
) -> None:
    receiver = websocket.app.state.receiver
    hub: LiveHub = websocket.app.state.live
    try:
        keyed, by_cookie = request_tenant(receiver.auth, websocket.headers, websocket.cookies, api_key)
    except Unauthenticated:
        await websocket.close(code=1008, reason="a valid API key is required")
        return
    if by_cookie and not same_origin(websocket.headers):
        # A page of another origin on the same site would carry the cookie: refuse it.
        await websocket.close(code=1008, reason="the sign-in cookie counts only on the page's own origin")
        return
    await websocket.accept()
    subscriber = _Subscriber(keyed or tenant or DEFAULT_TENANT, agent, run_id)
    hub.subscribe(subscriber)
    try:
        while True:
            message = await subscriber.queue.get()
            await websocket.send_json({k: v for k, v in message.items() if k not in ("tenant", _LATE)})
    except WebSocketDisconnect:
        pass
    finally:
        hub.unsubscribe(subscriber)

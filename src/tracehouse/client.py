"""The Python client of a tracehouse server's HTTP API, with typed results.

>>> client = tracehouse.Client("http://127.0.0.1:4318", api_key="...")
>>> for run in client.history(agent="planner", limit=10):
...     print(run.run_id, run.status, run.cost_cents)
>>> client.resume(run_id, until_checkpoint="after-search").messages

It offers the read service's operations (:class:`tracehouse.store.reads.ReadService`), by the
same names and parameters, and returns the same models (:mod:`tracehouse.responses`), so code
written against one runs against the other. Only the server has the rest: ``ping``, the live
stream (``tail``) and the quarantine. It imports the response models, never FastAPI or the
server's modules.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypeVar

from pydantic import TypeAdapter

from tracehouse import responses
from tracehouse.responses import (
    AgentOverview,
    Comparison,
    Conversation,
    Deleted,
    HistoryItem,
    LogsResponse,
    NodeDetail,
    QuarantinedRecord,
    Replay,
    Resume,
    RetentionSettings,
    RunTree,
)

DEFAULT_URL = "http://127.0.0.1:4318"
T = TypeVar("T")


class ClientError(RuntimeError):
    """The server answered with an error; ``status`` is the HTTP status."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class NotFound(ClientError, responses.NotFound):
    """The server answered 404: also a :class:`tracehouse.responses.NotFound`, like the read
    service's."""


class Client:
    def __init__(
        self, url: str = DEFAULT_URL, api_key: str | None = None, *, tenant: str | None = None, timeout: float = 30.0
    ):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.tenant = tenant  # only for a server without API keys
        self.timeout = timeout

    def _call(self, method: str, path: str, result: Any, params: dict | None = None, body: Any = None) -> Any:
        url = f"{self.url}{path}{self._query(params)}"
        headers = {"Accept": "application/json", **self._auth()}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("detail", exc.reason)
            except ValueError:
                detail = exc.reason
            raise (NotFound if exc.code == 404 else ClientError)(exc.code, str(detail)) from None
        return TypeAdapter(result).validate_python(payload)

    def _query(self, params: dict | None) -> str:
        """The query string of a request: its parameters that are set, and the tenant."""
        query = {
            k: v.isoformat() if isinstance(v, datetime) else v
            for k, v in {**(params or {}), "tenant": self.tenant}.items()
            if v is not None
        }
        return f"?{urllib.parse.urlencode(query)}" if query else ""

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def ping(self) -> bool:
        """Whether a server answers at ``url``."""
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=min(self.timeout, 3)) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def history(self, agent: str | None = None, skip: int = 0, limit: int = 100) -> list[HistoryItem]:
        return self._call(
            "GET", "/api/v1/agents/history", list[HistoryItem], {"agent_id": agent, "skip": skip, "limit": limit}
        )

    def logs(self, run_id: str) -> LogsResponse:
        return self._call("GET", "/api/v1/agents/logs", LogsResponse, {"run_id": run_id})

    def events(self, run_id: str, mode: str = "full") -> Replay:
        return self._call("GET", f"/api/v1/runs/{urllib.parse.quote(run_id, safe='')}/events", Replay, {"mode": mode})

    def conversation(self, conversation_id: str, mode: str = "full") -> Replay:
        path = f"/api/v1/conversations/{urllib.parse.quote(conversation_id, safe='')}/events"
        return self._call("GET", path, Replay, {"mode": mode})

    def resume(self, run_id: str, until_node: str | None = None, until_checkpoint: str | None = None) -> Resume:
        return self._call(
            "GET",
            f"/api/v1/runs/{urllib.parse.quote(run_id, safe='')}/resume",
            Resume,
            {"until_node": until_node, "until_checkpoint": until_checkpoint},
        )

    # ``since`` and ``until``: a datetime, or ISO 8601 text.

    def stats(
        self, group_by: str = "agent", since: datetime | str | None = None, until: datetime | str | None = None
    ) -> list[dict[str, Any]]:
        return self._call("GET", "/api/v1/stats", list[dict], {"group_by": group_by, "since": since, "until": until})

    def usage(
        self,
        by: str = "model",
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        agent: str | None = None,
    ) -> list[dict[str, Any]]:
        params = {"by": by, "since": since, "until": until, "agent": agent}
        return self._call("GET", "/api/v1/usage", list[dict], params)

    def node_performance(
        self,
        limit: int = 20,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        agent: str | None = None,
    ) -> list[dict[str, Any]]:
        params = {"limit": limit, "since": since, "until": until, "agent": agent}
        return self._call("GET", "/api/v1/nodes/performance", list[dict], params)

    def delete_run(self, run_id: str) -> Deleted:
        return self._call("DELETE", f"/api/v1/runs/{urllib.parse.quote(run_id, safe='')}", Deleted)

    def delete_user(self, user_id: str) -> Deleted:
        return self._call("DELETE", f"/api/v1/users/{urllib.parse.quote(user_id, safe='')}", Deleted)

    def retention(self) -> RetentionSettings:
        return self._call("GET", "/api/v1/retention", RetentionSettings)

    def set_retention(self, days: int, payload_days: int | None = None) -> RetentionSettings:
        return self._call(
            "PUT",
            "/api/v1/retention",
            RetentionSettings,
            body={"retention_days": days, "payload_retention_days": payload_days},
        )

    def cleanup(self) -> Deleted:
        """Apply retention now instead of at the next merges; says what was removed."""
        return self._call("POST", "/api/v1/retention/cleanup", Deleted)

    # --- conversation, agent and compare pages ---

    def conversation_runs(self, conversation_id: str, mode: str = "full") -> Conversation:
        path = f"/api/v1/conversations/{urllib.parse.quote(conversation_id, safe='')}/runs"
        return self._call("GET", path, Conversation, {"mode": mode})

    def agent(
        self, name: str, since: datetime | str | None = None, until: datetime | str | None = None
    ) -> AgentOverview:
        path = f"/api/v1/agents/{urllib.parse.quote(name, safe='')}/overview"
        return self._call("GET", path, AgentOverview, {"since": since, "until": until})

    def compare(self, a: str, b: str) -> Comparison:
        """Two runs' steps aligned side by side, with what differs."""
        return self._call("GET", "/api/v1/compare", Comparison, {"a": a, "b": b})

    # ---------------------------------------------------------------------------------------------

    def quarantined(self) -> list[QuarantinedRecord]:
        """Requests the store refused for their data, kept until retried or dropped."""
        return self._call("GET", "/api/v1/quarantine", list[QuarantinedRecord])

    def retry_quarantined(self, entry_id: str) -> QuarantinedRecord:
        path = f"/api/v1/quarantine/{urllib.parse.quote(entry_id, safe='')}/retry"
        return self._call("POST", path, QuarantinedRecord)

    def drop_quarantined(self, entry_id: str) -> QuarantinedRecord:
        return self._call("DELETE", f"/api/v1/quarantine/{urllib.parse.quote(entry_id, safe='')}", QuarantinedRecord)

    def tail(
        self, agent: str | None = None, run_id: str | None = None, *, idle_timeout: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Live events (execution_started, node_executed, execution_completed, execution_failed,
        execution_incomplete) as the server stores spans, optionally of one agent or run.
        Connects before returning, so nothing stored after the call is missed; the iterator ends
        when the server closes the stream, or after ``idle_timeout`` seconds without an event."""
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        base = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        url = f"{base}/ws/events{self._query({'agent': agent, 'run_id': run_id})}"
        try:
            ws = connect(url, additional_headers=self._auth(), open_timeout=self.timeout)
        except InvalidStatus as exc:
            code = exc.response.status_code
            raise ClientError(code, "the server refused the live stream (a valid API key is required)") from None
        except (OSError, TimeoutError) as exc:
            raise ClientError(0, f"no server at {self.url} ({exc}); tail needs a running server") from None
        return _receive(ws, idle_timeout)

    # --- the runs page ---------------------------------------------------------------------------

    def runs(
        self,
        agent: str | None = None,
        status: str | None = None,
        user: str | None = None,
        conversation: str | None = None,
        model: str | None = None,
        search: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        skip: int = 0,
        limit: int = 50,
    ) -> responses.RunsPage:
        params = {"agent": agent, "status": status, "user": user, "conversation": conversation, "model": model}
        params |= {"search": search, "since": since, "until": until, "skip": skip, "limit": limit}
        return self._call("GET", "/api/v1/runs", responses.RunsPage, params)

    def activity(
        self,
        agent: str | None = None,
        status: str | None = None,
        user: str | None = None,
        conversation: str | None = None,
        model: str | None = None,
        search: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> responses.Activity:
        params = {"agent": agent, "status": status, "user": user, "conversation": conversation, "model": model}
        params |= {"search": search, "since": since, "until": until}
        return self._call("GET", "/api/v1/activity", responses.Activity, params)

    # --- the run page ---

    def run_tree(self, run_id: str, offset: int = 0, limit: int | None = None) -> RunTree:
        path = f"/api/v1/runs/{urllib.parse.quote(run_id, safe='')}/tree"
        return self._call("GET", path, RunTree, {"offset": offset or None, "limit": limit})

    def node(self, run_id: str, span_id: str) -> NodeDetail:
        path = f"/api/v1/runs/{urllib.parse.quote(run_id, safe='')}/nodes/{urllib.parse.quote(span_id, safe='')}"
        return self._call("GET", path, NodeDetail)


def _receive(ws: Any, idle_timeout: float | None) -> Iterator[dict[str, Any]]:
    from websockets.exceptions import ConnectionClosed

    with ws:
        while True:
            try:
                yield json.loads(ws.recv(timeout=idle_timeout))
            except (TimeoutError, ConnectionClosed):
                return


__all__ = ["Client", "ClientError", "NotFound"]

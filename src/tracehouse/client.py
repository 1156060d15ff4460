"""The Python client of a tracehouse server's HTTP API, with typed results.

>>> client = tracehouse.Client("http://127.0.0.1:4318", api_key="...")
>>> for run in client.history(agent="planner", limit=10):
...     print(run.run_id, run.status, run.cost_cents)
>>> client.resume(run_id, until_checkpoint="after-search").messages
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, TypeVar

from pydantic import TypeAdapter

from tracehouse.api.agents import HistoryItem, LogsResponse
from tracehouse.api.runs import Deleted, Replay, Resume, RetentionSettings

DEFAULT_URL = "http://127.0.0.1:4318"
T = TypeVar("T")


class ClientError(RuntimeError):
    """The server answered with an error; ``status`` is the HTTP status."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class NotFound(ClientError):
    pass


class Client:
    def __init__(
        self, url: str = DEFAULT_URL, api_key: str | None = None, *, tenant: str | None = None, timeout: float = 30.0
    ):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.tenant = tenant  # only for a server without API keys
        self.timeout = timeout

    def _call(self, method: str, path: str, result: Any, params: dict | None = None, body: Any = None) -> Any:
        query = {k: v for k, v in {**(params or {}), "tenant": self.tenant}.items() if v is not None}
        url = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
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

    def stats(self, group_by: str = "agent", since: str | None = None, until: str | None = None) -> list[dict]:
        return self._call("GET", "/api/v1/stats", list[dict], {"group_by": group_by, "since": since, "until": until})

    def usage(self, by: str = "model", since: str | None = None, until: str | None = None) -> list[dict]:
        return self._call("GET", "/api/v1/usage", list[dict], {"by": by, "since": since, "until": until})

    def node_performance(self, limit: int = 20) -> list[dict]:
        return self._call("GET", "/api/v1/nodes/performance", list[dict], {"limit": limit})

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


__all__ = ["Client", "ClientError", "NotFound"]

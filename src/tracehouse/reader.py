"""Where the CLI reads from: a running server over HTTP, else the store itself.

The embedded store belongs to the server process, so the CLI asks the server first; only when
no server answers does it open the store directly (which fails, saying who holds it, if a
process does). Direct reads call the very functions the HTTP routes call, so both give the same
results.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import HTTPException

from tracehouse.api import agents, runs
from tracehouse.api import stats as stats_api
from tracehouse.client import Client, ClientError, NotFound
from tracehouse.dirlock import DirectoryBusy
from tracehouse.model import DEFAULT_TENANT
from tracehouse.replay import Mode
from tracehouse.store import Store


class DirectReader:
    """The Client's read and delete operations, on an open store."""

    def __init__(self, store: Store, tenant: str | None):
        self.store = store
        self.scope = (store, tenant or DEFAULT_TENANT)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, scope=self.scope, **kwargs)
        except HTTPException as exc:
            raise (NotFound if exc.status_code == 404 else ClientError)(exc.status_code, str(exc.detail)) from None

    def history(self, agent: str | None = None, skip: int = 0, limit: int = 100) -> list:
        return self._call(agents.history, agent_id=agent, skip=skip, limit=limit)

    def logs(self, run_id: str) -> agents.LogsResponse:
        return self._call(agents.logs, run_id)

    def events(self, run_id: str, mode: str = "full") -> runs.Replay:
        return self._call(runs.run_events, run_id, Mode(mode))

    def resume(self, run_id: str, until_node: str | None = None, until_checkpoint: str | None = None) -> runs.Resume:
        return self._call(runs.resume, run_id, until_node, until_checkpoint)

    def stats(self, group_by: str = "agent", since: str | None = None, until: str | None = None) -> list[dict]:
        return self._call(stats_api.stats, group_by, _when(since), _when(until))

    def usage(self, by: str = "model", since: str | None = None, until: str | None = None) -> list[dict]:
        return self._call(stats_api.usage, by, _when(since), _when(until))

    def delete_run(self, run_id: str) -> runs.Deleted:
        return self._call(runs.delete_run, run_id)

    def retention(self) -> runs.RetentionSettings:
        return self._call(runs.get_retention)

    def set_retention(self, days: int, payload_days: int | None = None) -> runs.RetentionSettings:
        settings = runs.RetentionSettings(retention_days=days, payload_retention_days=payload_days)
        return self._call(runs.put_retention, settings)

    def cleanup(self) -> runs.Deleted:
        return self._call(runs.cleanup)

    def close(self) -> None:
        self.store.close()


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def open_reader(url: str, api_key: str | None, tenant: str | None, store_dsn: str) -> tuple[Any, str]:
    """A reader and a line saying where it reads from."""
    client = Client(url, api_key, tenant=tenant)
    if client.ping():
        return client, f"reading from the server at {url}"
    store = Store.open(store_dsn)
    return DirectReader(store, tenant), f"no server at {url}: reading the store {store.address.describe()} directly"


class DirectQuarantine:
    """The Client's quarantine operations, on a spool directory no server holds: every
    tenant's entries. A retried request goes into the spool, stored at the server's next start."""

    def __init__(self, spool_directory: str):
        from tracehouse.ingest.quarantine import Quarantine

        self.directory = spool_directory
        self.quarantine = Quarantine(spool_directory)

    def _get(self, entry_id: str) -> Any:
        from tracehouse.ingest.quarantine import NotQuarantined

        try:
            return self.quarantine.get(entry_id)
        except NotQuarantined:
            raise NotFound(404, f"no quarantined request {entry_id!r}") from None

    def quarantined(self) -> list:
        return self.quarantine.entries()

    def retry_quarantined(self, entry_id: str) -> Any:
        from tracehouse.ingest.spool import Spool

        entry = self._get(entry_id)
        try:
            spool = Spool(self.directory)
        except DirectoryBusy as exc:  # a server holds it, yet did not answer at its URL
            raise ClientError(409, f"{exc}; retry through that server (--url)") from None
        try:
            self.quarantine.retry(entry, spool)
        finally:
            spool.close()
        return entry

    def drop_quarantined(self, entry_id: str) -> Any:
        entry = self._get(entry_id)
        self.quarantine.remove(entry)
        return entry


def open_quarantine(url: str, api_key: str | None, tenant: str | None, spool_directory: str) -> tuple[Any, str]:
    """The quarantine of the server at ``url``, else of the spool directory."""
    client = Client(url, api_key, tenant=tenant)
    if client.ping():
        return client, f"the quarantine of the server at {url}"
    return DirectQuarantine(spool_directory), f"no server at {url}: the quarantine in {spool_directory}"

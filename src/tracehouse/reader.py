"""Where the CLI reads from: a running server over HTTP, else the store itself.

The embedded store belongs to the server process, so the CLI asks the server first; only when
no server answers does it open the store directly (which fails, saying who holds it, if a
process does). Direct reads go through the read service the HTTP routes answer with, so both
give the same results.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tracehouse.client import Client, ClientError, NotFound
from tracehouse.dirlock import DirectoryBusy
from tracehouse.store import Store
from tracehouse.store.reads import ReadService


@contextmanager
def open_reader(
    url: str, api_key: str | None, tenant: str | None, store_dsn: str
) -> Iterator[tuple[Client | ReadService, str]]:
    """A reader (the client of the server at ``url``, else the read service of the store, which
    offer the same operations) and a line saying where it reads from. A store opened here is
    closed on leaving."""
    client = Client(url, api_key, tenant=tenant)
    if client.ping():
        yield client, f"reading from the server at {url}"
        return
    with Store.open(store_dsn) as store:
        yield ReadService(store, tenant), f"no server at {url}: reading the store {store.address.describe()} directly"


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

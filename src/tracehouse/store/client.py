"""The one client factory: clickhouse-connect over the embedded engine (chdb) or a server.

A ClickHouse server's client is one per thread (:class:`ClientPerThread`): clickhouse-connect
talks to a server in a session (the temporary tables of a batch and of a run refresh live in
it), and a server refuses a session to two queries at once (``SESSION_IS_LOCKED``; the driver
refuses first), while the writer and the read API's threads share one store.

An embedded store directory belongs to one process at a time. :func:`connect` takes an
exclusive lock on ``<dir>/tracehouse-store.lock`` and raises :class:`StoreBusyError`, naming the
holder, when another process has it; the lock is released when the client is closed or the
process exits (even on SIGKILL, since it is an ``flock``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from importlib.resources import files
from typing import Any

import clickhouse_connect

from tracehouse.dirlock import DirectoryBusy, lock_directory
from tracehouse.store.dsn import StoreAddress

LOCK_FILE = "tracehouse-store.lock"
# Settings applied to every session: times are UTC whatever the host's time zone; an insert
# does not collapse duplicate keys within its own block (``optimize_on_insert``): that pass
# copies the block row by row and cost more than half of a span insert, and every read that
# must see one row per key already collapses duplicates across parts (FINAL, LIMIT 1 BY), so
# duplicates within a part are read the same way. A block whose rows span more than 100 daily
# partitions (an import of old data, a backlog after a long outage) is written, not refused
# (``throw_on_max_partitions_per_insert_block``): the receiver's time checks bound how many
# there can be, and refusing such a block would hold it in the spool for good.
SESSION_SETTINGS = {"session_timezone": "UTC", "optimize_on_insert": 0, "throw_on_max_partitions_per_insert_block": 0}


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message says why and what to do."""


class StoreBusyError(StoreError):
    """Another process owns the embedded store directory."""


def embedded_config_path() -> str:
    """The shipped server configuration of the embedded engine (system logs off)."""
    return str(files("tracehouse.store").joinpath("embedded.xml"))


def connect(address: StoreAddress) -> Any:
    """A clickhouse-connect client for the address. SQL should use qualified table names."""
    if not address.embedded:
        return ClientPerThread(address)
    lock_fd = _lock_directory(address.path) if address.path else None
    try:
        client = clickhouse_connect.get_client(
            interface="chdb",
            path=address.path,
            settings=SESSION_SETTINGS,
            chdb_options={"config-file": embedded_config_path()},
        )
    except Exception as exc:
        if lock_fd is not None:
            os.close(lock_fd)
        raise StoreError(
            f"cannot open the embedded store {address.describe()}: {exc}. "
            "One process can open only one embedded store directory at a time."
        ) from exc
    if lock_fd is not None:
        _release_on_close(client, lock_fd)
    return client


def _lock_directory(path: str) -> int:
    try:
        return lock_directory(path, LOCK_FILE, "embedded store")
    except DirectoryBusy as exc:
        raise StoreBusyError(f"{exc}; talk to that process over HTTP (tracehouse serve) or stop it first") from None


def _release_on_close(client: Any, fd: int) -> None:
    close = client.close

    def close_and_unlock() -> None:
        try:
            close()
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)

    client.close = close_and_unlock


class ClientPerThread:
    """A ClickHouse server's clickhouse-connect client, one per thread that uses it (each with
    its own session), behind the one client interface. The first is made at once, so that an
    unreachable server is known when the store is opened; a thread's client is closed when a
    later thread's is made after that thread has ended, and all of them by :meth:`close`."""

    def __init__(self, address: StoreAddress):
        self._address = address
        self._lock = threading.Lock()
        self._clients: dict[threading.Thread, Any] = {}
        self._closed = False
        self._client()

    def _client(self) -> Any:
        thread = threading.current_thread()
        client = self._clients.get(thread)
        if client is not None:
            return client
        if self._closed:
            raise StoreError(f"the store {self._address.describe()} is closed")
        try:
            client = clickhouse_connect.get_client(dsn=self._address.url, settings=SESSION_SETTINGS)
        except Exception as exc:  # the driver raises several types; all mean "cannot connect"
            raise StoreError(f"cannot connect to ClickHouse at {self._address.describe()}: {exc}") from exc
        with self._lock:
            ended = [t for t in self._clients if not t.is_alive()]
            self._clients[thread] = client
            for gone in [self._clients.pop(t) for t in ended]:
                with contextlib.suppress(Exception):
                    gone.close()
        return client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client(), name)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                client.close()

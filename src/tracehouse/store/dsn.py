"""Store addresses: ``chdb://PATH`` for the embedded engine, ``http(s)://...`` for a server."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_DSN = "chdb://./tracehouse-data"
DEFAULT_DATABASE = "tracehouse"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DSNError(ValueError):
    """A store address that cannot be used, with the reason."""


@dataclass(frozen=True)
class StoreAddress:
    """A parsed DSN. ``path`` is set for the embedded engine, ``url`` for a server."""

    kind: str  # "chdb" or "http"
    database: str
    path: str | None = None  # absolute directory of an embedded store, or None for in-memory
    url: str | None = None  # the server DSN without the database part

    @property
    def embedded(self) -> bool:
        return self.kind == "chdb"

    def describe(self) -> str:
        """The address without credentials, fit for logs and error messages."""
        if self.embedded:
            return f"chdb://{self.path or ':memory:'} (database {self.database})"
        parts = urlsplit(self.url or "")
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}/{self.database}"


def parse_dsn(dsn: str) -> StoreAddress:
    """Parse a store DSN.

    ``chdb://./tracehouse-data``, ``chdb:///var/lib/tracehouse`` and ``chdb://:memory:`` name
    an embedded store (relative paths are resolved against the working directory);
    ``http://user:password@host:8123/db`` and ``https://...`` name a ClickHouse server. Either
    takes ``?database=NAME``; a server DSN's path names the database too. The default database
    is ``tracehouse``.
    """
    if not dsn or not isinstance(dsn, str):
        raise DSNError("empty store DSN; expected chdb://PATH or http(s)://HOST:PORT/DB")
    scheme, sep, rest = dsn.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise DSNError(f"store DSN {dsn!r} has no scheme; expected chdb://PATH or http(s)://HOST:PORT/DB")
    location, _, query = rest.partition("?")
    params = {key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()}
    database = params.pop("database", "")
    if scheme == "chdb":
        if params:
            raise DSNError(f"unknown option(s) in store DSN: {', '.join(sorted(params))}")
        location = unquote(location)
        path = None if location in ("", ":memory:", "memory") else os.path.abspath(location)
        return StoreAddress("chdb", _database(database or DEFAULT_DATABASE), path=path)
    if scheme in ("http", "https"):
        parts = urlsplit(f"{scheme}://{rest}")
        if not parts.hostname:
            raise DSNError(f"store DSN {_redact(dsn)!r} names no host")
        path_db = parts.path.strip("/")
        database = _database(database or path_db or DEFAULT_DATABASE)
        netloc = parts.netloc
        extra = "&".join(f"{k}={v}" for k, v in params.items())
        url = f"{scheme}://{netloc}" + (f"?{extra}" if extra else "")
        return StoreAddress("http", database, url=url)
    raise DSNError(f"unsupported store DSN scheme {scheme!r}; expected chdb, http or https")


def _database(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise DSNError(f"database name {name!r} must be a plain identifier (letters, digits, _)")
    return name


def _redact(dsn: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", dsn)

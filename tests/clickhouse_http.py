"""A stand-in for a ClickHouse server's HTTP interface, answered by the embedded engine.

No ClickHouse server can be installed on the test machines (Debian's package is far older than
the Map columns tracehouse uses), so the server store path is tested against this: a small
threaded HTTP server on 127.0.0.1 that answers clickhouse-connect the way ClickHouse's HTTP
interface does, and runs every statement on chdb (the ClickHouse engine, in this process).

What it does as a server does:

- the statement from the ``query`` URL parameter and/or the request body (an ``INSERT ...
  FORMAT X`` is followed by its data, in the body or after the statement in it);
- ``param_NAME`` bound parameters, handed to the engine as parameters (never spliced);
- settings as URL parameters, for that request only (``default_format`` too), and ``database``;
- ``session_id``: each session has its own engine connection, so temporary tables, ``USE`` and
  ``SET`` live in their session, expire after ``session_timeout`` idle seconds (60 by default),
  and a session used by two requests at once answers ``SESSION_IS_LOCKED`` (373) as a server
  does; a request without a session gets a connection of its own for that request;
- request bodies compressed as clickhouse-connect sends them (``Content-Encoding`` lz4 frames,
  zstd, gzip, deflate), and responses compressed when asked (``enable_http_compression=1`` and
  ``Accept-Encoding``);
- insert bodies in any input format the engine reads (clickhouse-connect sends Native);
- the output format named in the statement or by ``default_format`` (TabSeparated otherwise),
  with the ``X-ClickHouse-Format``, ``-Query-Id``, ``-Timezone`` and ``-Summary`` headers;
- errors as ClickHouse sends them: an HTTP error status, ``X-ClickHouse-Exception-Code`` and a
  ``Code: N. DB::Exception: ...`` body;
- ``file()`` reads the server's disk, not the client's: a statement that names it is refused
  (``DATABASE_ACCESS_DENIED``, 291), since the client's files are not the server's;
- ``format_schema_source='string'`` schemas are kept in the stand-in's own directory, as a
  server keeps them in its ``format_schemas`` cache (the engine would write them beside the
  process's working directory).

What it does not: authentication (users, passwords and roles are ignored), TLS, progress
headers, external data (multipart forms), streamed responses (a result is sent whole), query
cancellation, ``session_check``, quotas and memory limits, replication, ``ON CLUSTER`` and
Distributed tables, more than one server. Those need a real ClickHouse server (docs/operations.md).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import chdb

# Parameters of the HTTP interface itself; every other parameter (but ``param_*``) is a setting.
TRANSPORT = frozenset(
    {
        "query", "database", "default_format", "session_id", "session_timeout", "session_check",
        "query_id", "user", "password", "quota_key", "role", "compress", "decompress", "buffer_size",
        "wait_end_of_query", "client_protocol_version", "enable_http_compression",
        "send_progress_in_http_headers", "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close", "max_query_size", "stacktrace", "close_session",
    }
)  # fmt: skip
# Statements that answer with a result set (``X-ClickHouse-Format``), by their first word.
_RESULT_STATEMENTS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK", "("})
_INSERT_DATA = re.compile(rb"^\s*(INSERT\b.*?)\bFORMAT\s+(\w+)[ \t]*(?:\r?\n)?", re.IGNORECASE | re.DOTALL)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_CODE = re.compile(r"Code:\s*(\d+)")
# The file() table function reads the server's own disk (its user_files), never the client's.
_FILE_FUNCTION = re.compile(r"\bfile\s*\(", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# HTTP statuses ClickHouse answers some error codes with (the rest: 500).
_STATUS = {
    27: 400, 36: 400, 38: 400, 41: 400, 62: 400, 6: 400, 72: 400, 117: 400, 115: 400,  # bad query or data
    60: 404, 81: 404, 46: 404,  # unknown table, database, function
    373: 500, 516: 403, 192: 403, 497: 403,
}  # fmt: skip
MAX_CONCURRENT_REQUESTS = 16


class QueryError(Exception):
    """An error the endpoint answers as ClickHouse would: code and message."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def _engine_error(exc: BaseException) -> QueryError:
    text = str(exc)
    at = text.find("Code: ")
    message = text[at:].strip() if at >= 0 else text.strip()
    match = _CODE.search(message)
    return QueryError(
        int(match.group(1)) if match else 1001, message if match else f"Code: 1001. DB::Exception: {message}"
    )


def _quote(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def decompress(data: bytes, encoding: str) -> bytes:
    """A request body as clickhouse-connect compresses it: an insert's blocks are separate lz4
    frames (or zstd frames, gzip members), one after another."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding == "lz4":
        import lz4.frame

        out = bytearray()
        while data:
            decompressor = lz4.frame.LZ4FrameDecompressor()
            out += decompressor.decompress(data)
            data = decompressor.unused_data
        return bytes(out)
    if encoding == "zstd":
        from clickhouse_connect.driver.compression import _zstd_decompress

        return _zstd_decompress(data)
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)
    raise QueryError(1001, f"Code: 1001. DB::Exception: Unknown Content-Encoding {encoding!r}. (UNKNOWN_ENCODING)")


def compress(data: bytes, accept: str) -> tuple[bytes, str | None]:
    """The response body in the first encoding of ``Accept-Encoding`` the endpoint can write."""
    for encoding in (e.split(";")[0].strip().lower() for e in accept.split(",")):
        if encoding == "lz4":
            import lz4.frame

            return lz4.frame.compress(data), "lz4"
        if encoding == "zstd":
            from clickhouse_connect.driver.compression import _zstd_compress

            return _zstd_compress(data), "zstd"
        if encoding == "gzip":
            return gzip.compress(data), "gzip"
        if encoding == "deflate":
            return zlib.compress(data), "deflate"
    return data, None


class _Session:
    """One engine connection: a session's, or a request's own."""

    def __init__(self, connection: Any, timeout: float):
        self.connection = connection
        self.lock = threading.Lock()
        self.timeout = timeout
        self.used = time.monotonic()
        self.database = "default"
        self.settings: dict[str, str] = {}  # applied by the endpoint for the request running

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()

    def use(self, database: str) -> None:
        if database != self.database:
            if not _NAME.match(database):
                raise QueryError(81, f"Code: 81. DB::Exception: Database {database} does not exist. (UNKNOWN_DATABASE)")
            self.connection.query(f"USE {database}", "TabSeparated")
            self.database = database

    def apply(self, settings: dict[str, str]) -> None:
        """The request's settings in force, and those of the previous request no longer: a URL
        setting lasts one request, as on a server."""
        for name in [n for n in self.settings if n not in settings]:
            self.connection.query(f"SET {name} = DEFAULT", "TabSeparated")
            del self.settings[name]
        for name, value in settings.items():
            if self.settings.get(name) != value:
                if not _NAME.match(name):
                    raise QueryError(115, f"Code: 115. DB::Exception: Unknown setting {name}. (UNKNOWN_SETTING)")
                self.connection.query(f"SET {name} = {_quote(value)}", "TabSeparated")
                self.settings[name] = value


class ClickHouseHTTP:
    """The endpoint over one engine (``connection_string`` as chdb.connect takes it)."""

    version = "26.9"

    def __init__(self, connection_string: str, directory: str | None = None):
        self.connection_string = connection_string
        self._scratch = None if directory else tempfile.TemporaryDirectory(prefix="clickhouse-http-")
        self.directory = directory or self._scratch.name
        os.makedirs(self.directory, exist_ok=True)
        self.sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT_REQUESTS)
        self.requests = 0
        probe = chdb.connect(connection_string)
        try:
            version, zone = probe.query("SELECT version(), timezone()", "TabSeparated").bytes().decode().split()
        finally:
            probe.close()
        self.version, self.timezone = version, zone
        endpoint = self

        class Handler(_Handler):
            server_endpoint = endpoint

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="clickhouse-http", daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ClickHouseHTTP:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)
        with self._lock:
            sessions, self.sessions = list(self.sessions.values()), {}
        for session in sessions:
            session.close()
        if self._scratch is not None:
            self._scratch.cleanup()

    def __enter__(self) -> ClickHouseHTTP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- sessions --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self, session_id: str | None, timeout: float) -> Iterator[_Session]:
        if not session_id:
            own = _Session(chdb.connect(self.connection_string), timeout)
            try:
                yield own
            finally:
                own.close()
            return
        with self._lock:
            self._expire()
            found = self.sessions.get(session_id)
            if found is None:
                found = self.sessions[session_id] = _Session(chdb.connect(self.connection_string), timeout)
        if not found.lock.acquire(blocking=False):
            raise QueryError(
                373,
                f"Code: 373. DB::Exception: Session {session_id} is locked by a concurrent client. (SESSION_IS_LOCKED)",
            )
        try:
            found.timeout = timeout
            yield found
        finally:
            found.used = time.monotonic()
            found.lock.release()

    def _expire(self) -> None:
        now = time.monotonic()
        for key, session in list(self.sessions.items()):
            if now - session.used > session.timeout and not session.lock.locked():
                del self.sessions[key]
                session.close()

    # --- one request -----------------------------------------------------------------------------

    def schema_file(self, text: str) -> str:
        """A schema given as a string, kept as a server keeps it: in a cache of its own."""
        path = os.path.join(self.directory, hashlib.sha256(text.encode()).hexdigest() + ".proto")
        if not os.path.exists(path):
            with open(path + ".tmp", "w") as f:
                f.write(text)
            os.replace(path + ".tmp", path)
        return path

    def execute(self, params: dict[str, str], body: bytes) -> tuple[bytes, dict[str, str]]:
        """Run a request: the response body and the X-ClickHouse headers."""
        self.requests += 1
        query_id = params.get("query_id") or str(uuid.uuid4())
        bound = {k[len("param_") :]: v for k, v in params.items() if k.startswith("param_")}
        settings = {k: v for k, v in params.items() if k not in TRANSPORT and not k.startswith("param_")}
        if settings.get("format_schema_source") == "string" and "format_schema" in settings:
            path = self.schema_file(settings["format_schema"])
            message = settings.pop("format_schema_message_name", "")
            settings["format_schema_source"] = "file"
            settings["format_schema"] = f"{path}:{message}" if message else path
        statement, data, input_format = self._split(params.get("query", ""), body)
        if _FILE_FUNCTION.search(statement) or re.search(r"\bINFILE\b", statement, re.IGNORECASE):
            raise QueryError(
                291,
                "Code: 291. DB::Exception: File is not inside the server's user_files directory: a ClickHouse "
                "server reads file() from its own disk, not the client's. (DATABASE_ACCESS_DENIED)",
            )
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": settings.get("session_timezone") or self.timezone,
            "X-ClickHouse-Server-Display-Name": "clickhouse-http-stand-in",
        }
        timeout = float(params.get("session_timeout") or 60)
        started = time.monotonic()
        with self.session(params.get("session_id"), timeout) as session:
            try:
                session.use(params.get("database") or "default")
                session.apply(settings)
                if input_format is not None:
                    inserter = session.connection.send_insert(statement, input_format)
                    try:
                        inserter.append(data)
                        done = inserter.finish()
                    except BaseException:
                        with contextlib.suppress(Exception):
                            inserter.cancel()
                        raise
                    summary = {"written_rows": done.rows_written, "written_bytes": done.bytes_written}
                    result = b""
                else:
                    trailing = _TRAILING_FORMAT.search(statement)
                    output = trailing.group(1) if trailing else params.get("default_format") or "TabSeparated"
                    outcome = session.connection.query(statement, output, params=bound)
                    result = outcome.bytes() or b""
                    summary = {"read_rows": outcome.rows_read(), "read_bytes": outcome.bytes_read()}
                    if trailing or _first_word(statement) in _RESULT_STATEMENTS:
                        headers["X-ClickHouse-Format"] = output
                        summary["result_bytes"] = len(result)
            except QueryError:
                raise
            except Exception as exc:
                raise _engine_error(exc) from exc
        summary = {"read_rows": 0, "read_bytes": 0, "written_rows": 0, "written_bytes": 0, **summary}
        summary["elapsed_ns"] = int((time.monotonic() - started) * 1e9)
        headers["X-ClickHouse-Summary"] = json.dumps({k: str(v) for k, v in summary.items()})
        return result, headers

    @staticmethod
    def _split(query: str, body: bytes) -> tuple[str, bytes, str | None]:
        """The statement, the insert data, and the data's format (None: no insert data)."""
        if query:
            match = _INSERT_DATA.match(query.encode() + b"\n")
            if match:  # the statement in the URL, its data in the body
                return match.group(1).decode(), body, match.group(2).decode()
            whole = query.encode() + (b"\n" + body if body else b"")
        else:
            whole = body
        match = _INSERT_DATA.match(whole)
        if match:  # the statement first in the body, its data after it
            return match.group(1).decode(), whole[match.end() :], match.group(2).decode()
        text = whole.decode()
        if not text.strip():
            raise QueryError(62, "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)")
        return text, b"", None


def _first_word(statement: str) -> str:
    stripped = statement.lstrip()
    if stripped.startswith("("):
        return "("
    return stripped.split(None, 1)[0].upper() if stripped else ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms ACK wait
    server_endpoint: ClickHouseHTTP

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        endpoint = self.server_endpoint
        parts = urlsplit(self.path)
        body = self._body()
        if parts.path.rstrip("/") in ("/ping", "") and not parts.query and not body:
            self._send(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
            return
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        with endpoint._slots:
            try:
                body = decompress(body, self.headers.get("Content-Encoding", ""))
                result, headers = endpoint.execute(params, body)
            except Exception as exc:  # the stand-in's own failure: answered, not a dropped connection
                if not isinstance(exc, QueryError):
                    exc = QueryError(1001, f"Code: 1001. DB::Exception: {type(exc).__name__}: {exc}. (STD_EXCEPTION)")
                message = f"{exc} (version {endpoint.version})\n".encode()
                self._send(
                    _STATUS.get(exc.code, 500),
                    message,
                    {"X-ClickHouse-Exception-Code": str(exc.code), "Content-Type": "text/plain; charset=UTF-8"},
                )
                return
        headers["Content-Type"] = "application/octet-stream"
        if params.get("enable_http_compression") == "1" and result:
            result, encoding = compress(result, self.headers.get("Accept-Encoding", ""))
            if encoding:
                headers["Content-Encoding"] = encoding
        self._send(200, result, headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

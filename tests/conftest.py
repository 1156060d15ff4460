"""Shared fixtures: the real embedded ClickHouse engine, one database per test.

chdb hosts one engine directory per process, so the tests of one pytest process share one
engine (opened once, with the shipped embedded configuration) and isolate themselves by
database. Tests that need another directory run ``tracehouse`` in a subprocess.

The store's own tests (modules marked ``both_stores``) run twice: on the embedded engine, and
through a ClickHouse HTTP endpoint (:mod:`clickhouse_http`, the same engine behind the HTTP
interface clickhouse-connect talks to a server with); ``-m clickhouse_http`` selects the second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import browser_helpers
import pytest
import serve_helpers
from clickhouse_connect.driver._chdbclient import build_connection_string
from clickhouse_http import ClickHouseHTTP

from tracehouse.store import Store, migrations
from tracehouse.store.client import connect, embedded_config_path
from tracehouse.store.dsn import parse_dsn
from tracehouse.store.schema import Layout


@pytest.fixture(scope="session")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("engine"))


@pytest.fixture(scope="session")
def engine(engine_dir: str) -> Iterator[object]:
    client = connect(parse_dsn(f"chdb://{engine_dir}"))
    yield client
    client.close()


@pytest.fixture(scope="session")
def clickhouse_http(engine: Any, engine_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseHTTP]:
    """A ClickHouse HTTP endpoint over the session's engine (stopped at the end)."""
    engine_string = build_connection_string(engine_dir, {"config-file": embedded_config_path()})
    with ClickHouseHTTP(engine_string, str(tmp_path_factory.mktemp("clickhouse-http"))) as endpoint:
        yield endpoint


@contextmanager
def fresh_store(engine: Any, engine_dir: str, endpoint: ClickHouseHTTP | None = None) -> Iterator[Store]:
    """A migrated store in a fresh database of the shared embedded engine, dropped afterwards;
    with ``endpoint``, a server store: the same engine through its HTTP endpoint."""
    database = f"t_{uuid.uuid4().hex[:12]}"
    if endpoint is None:
        address = parse_dsn(f"chdb://{engine_dir}?database={database}")
        client = engine
    else:
        address = parse_dsn(f"{endpoint.url}/{database}")
        client = connect(address)
    store = Store(client, address, Layout(database=database))
    try:
        migrations.migrate(client, store.layout)
        yield store
    finally:
        client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
        if client is not engine:
            client.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked ``both_stores`` (or of a module so marked) that uses the store runs on both
    kinds of store, but for those marked ``embedded_only`` (with the reason)."""
    definition = metafunc.definition
    if (
        "store" in metafunc.fixturenames
        and definition.get_closest_marker("both_stores")
        and not definition.get_closest_marker("embedded_only")
    ):
        metafunc.parametrize(
            "store",
            [pytest.param("chdb", id="chdb"), pytest.param("http", id="http", marks=pytest.mark.clickhouse_http)],
            indirect=True,
        )


@pytest.fixture
def store(request: pytest.FixtureRequest, engine: object, engine_dir: str) -> Iterator[Store]:
    endpoint = request.getfixturevalue("clickhouse_http") if getattr(request, "param", "chdb") == "http" else None
    with fresh_store(engine, engine_dir, endpoint) as store:
        yield store


@pytest.fixture
def http_store(engine: object, engine_dir: str, clickhouse_http: ClickHouseHTTP) -> Iterator[Store]:
    """A server store (the shared engine through its HTTP endpoint), beside ``store``."""
    with fresh_store(engine, engine_dir, clickhouse_http) as store:
        yield store


def run_cli(*args: str, cwd: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the ``tracehouse`` command in its own process (its own engine directory)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tracehouse.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture
def served(tmp_path):
    """Start `tracehouse serve` subprocesses (each on its own store); all stop at teardown."""
    servers = []

    def start(*args: str) -> serve_helpers.Server:
        server = serve_helpers.Server(str(tmp_path / f"data{len(servers)}"), args)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(autouse=True)
def _unconfigure_tracehouse():
    """Whatever a test configured for the instrumentation ends with it (exporters to servers
    that are gone, logging handlers) instead of leaking into the next tests."""
    yield
    from tracehouse.instrument import shutdown

    shutdown()


@pytest.fixture
def server(tmp_path: Any) -> Iterator[Any]:
    """Start `tracehouse serve` subprocesses (``server(*args, store_dir=...)``); all are killed
    at the end of the test."""
    servers = []

    def start(*args: str, store_dir: str | None = None) -> serve_helpers.Server:
        s = serve_helpers.Server(store_dir or str(tmp_path / f"data{len(servers)}"), args)
        servers.append(s)  # registered before starting, so teardown stops it whatever happens
        return s.start()

    yield start
    for s in servers:
        s.stop(signal.SIGKILL)


@pytest.fixture
def small_disk(tmp_path: Any) -> Iterator[Any]:
    """A filesystem that really runs out: a 4 MiB tmpfs (mounting one needs root, which the
    test machines and CI have)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.fail(f"a full-disk test needs a tmpfs mount (as root): {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Any, leave: int = 0) -> Any:
    """Fill the filesystem of ``directory`` but for about ``leave`` bytes; the filler file."""
    filler = directory / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    if leave:
        os.truncate(filler, max(0, os.path.getsize(filler) - leave))
    return filler


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for the session (skipped, saying why, where it is not installed)."""
    why = browser_helpers.missing()
    if why:
        pytest.skip(f"no browser tests here: {why}")
    driver = browser_helpers.start_chromium(str(tmp_path_factory.mktemp("chromium-profile")))
    yield driver
    driver.quit()


@pytest.fixture
def browser(chromium: Any, tmp_path: Any) -> Iterator[browser_helpers.Page]:
    """The session's Chromium, fresh for this test; the test fails on any console error."""
    page = browser_helpers.Page(chromium, tmp_path)
    page.reset()
    yield page
    errors = page.console_errors()
    chromium.get("about:blank")  # nothing of this test's page lives on (its WebSocket, timers)
    chromium.get_log("browser")
    if errors:
        pytest.fail("JavaScript console errors:\n" + "\n".join(errors))

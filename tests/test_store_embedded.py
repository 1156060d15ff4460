"""The embedded engine as shipped: no system log tables, one owner process per directory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from tracehouse.demo import sample_runs
from tracehouse.store import StoreBusyError
from tracehouse.store.client import LOCK_FILE, connect
from tracehouse.store.dsn import parse_dsn


def test_no_system_log_table_exists_after_a_workload(store, engine_dir):
    for sample in sample_runs(5, seed=9):
        store.write(sample.nodes, sample.events)
    store.client.command(f"OPTIMIZE TABLE {store.table('otel_traces')} FINAL")
    store.client.command("SYSTEM FLUSH LOGS")
    on_disk = store.query("SELECT name FROM system.tables WHERE database = 'system' AND length(data_paths) > 0")
    assert on_disk == []
    assert not os.path.exists(os.path.join(engine_dir, "data", "system"))


def test_a_config_that_declares_a_system_log_would_be_caught(tmp_path):
    # Control for the test above: declaring a log section (even with remove="1") creates the
    # table on disk, which is why the shipped embedded.xml declares none.
    config = tmp_path / "with-log.xml"
    config.write_text('<clickhouse><query_log remove="1"/></clickhouse>')
    script = textwrap.dedent(f"""
        import clickhouse_connect
        c = clickhouse_connect.get_client(interface="chdb", path={str(tmp_path / "db")!r},
                                          chdb_options={{"config-file": {str(config)!r}}})
        c.command("SELECT 1")
        c.command("SYSTEM FLUSH LOGS")
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert os.path.isdir(tmp_path / "db" / "data" / "system" / "query_log")


def test_a_second_process_is_told_who_holds_the_store(tmp_path):
    ready = tmp_path / "ready"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time, pathlib
            from tracehouse.store import Store
            store = Store.open("chdb://{tmp_path / 'data'}")
            pathlib.Path({str(ready)!r}).write_text("1")
            time.sleep(60)
        """)],
    )  # fmt: skip
    try:
        for _ in range(600):
            if ready.exists() or holder.poll() is not None:
                break
            time.sleep(0.1)
        assert ready.exists(), "the holder did not open the store"
        with pytest.raises(StoreBusyError, match=rf"in use by pid {holder.pid}"):
            connect(parse_dsn(f"chdb://{tmp_path / 'data'}"))
    finally:
        holder.kill()
        holder.wait()
    # A killed holder leaves no stale lock: the flock died with it.
    assert (tmp_path / "data" / LOCK_FILE).exists()
    result = subprocess.run(
        [sys.executable, "-m", "tracehouse.cli", "migrate", "--store", f"chdb://{tmp_path / 'data'}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout

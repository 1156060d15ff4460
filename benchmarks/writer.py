"""The writer alone: how fast a backlog of spooled OTLP requests is stored, and where it goes.

Fills a spool with ``--requests`` requests of the ingest benchmark (1,000 GenAI spans each,
new ids every request), then lets the writer store the backlog in its ordinary batches on a
fresh embedded store, in this process, with no receiver and no clients beside it. Reports
spans/s stored, the process's CPU time per span (all engine threads), and the wall and CPU
time of each kind of statement the writer ran. Prints one JSON object.

Then the floor under the writer: each table the writer filled (the materialized views'
targets included) is written out in the engine's Native format, and those same rows are
inserted again from it into an empty copy of the table (same columns, keys, indexes, codecs and
TTL; no materialized views): the engine's own cost of sorting, indexing and compressing them,
in CPU µs per span stored, per table and in all, and the writer's CPU per span as a multiple of
it. What lies between the two is the writer's own work: parsing, normalizing, the temporary
tables, the rollups.

``--server`` stores through the tests' ClickHouse HTTP endpoint instead (tests/clickhouse_http.py:
the same engine, in this process, behind ClickHouse's HTTP interface), as a server store does;
its figures include the endpoint's own HTTP and Python work, which a real server does not add
to the receiver's process. ``--normalize python`` turns the engine path off.

    .venv/bin/python benchmarks/writer.py --requests 150
    .venv/bin/python benchmarks/writer.py --requests 150 --server
"""

from __future__ import annotations

import argparse
import collections
import random
import re
import sys
import tempfile
import time
from pathlib import Path

from ingest import build_request, renew_ids
from report import print_report

from tracehouse.ingest.metrics import Metrics
from tracehouse.ingest.spool import KIND_TRACES, Spool
from tracehouse.ingest.writer import Writer
from tracehouse.store import Store, schema
from tracehouse.store.retention import RetentionPolicy


def _statement_kind(sql: str) -> str:
    """A statement's first words and table: ``INSERT INTO tracehouse.events``."""
    words = re.sub(r"\s+", " ", str(sql)).strip()
    match = re.match(r"(INSERT INTO \S+|CREATE TEMPORARY TABLE \S+|SELECT .{0,40}? FROM \S+|\S+ \S+ \S+)", words)
    return match.group(1) if match else words[:60]


def floor(store: Store, directory: str, spans: int) -> dict:
    """The engine's cost of inserting the rows the writer stored, from Native, per table."""
    database = store.layout.database
    tables = store.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree' "
        "AND total_rows > 0 AND name != {migrations:String} ORDER BY name",
        {"db": database, "migrations": schema.MIGRATIONS},
    )
    per_table, total = {}, 0.0
    for (name,) in tables:
        path, copy = f"{directory}/floor-{name}.native", f"`{database}`.`floor_{name}`"
        store.client.command(f"INSERT INTO FUNCTION file('{path}', 'Native') SELECT * FROM `{database}`.`{name}`")
        store.client.command(f"CREATE TABLE {copy} AS `{database}`.`{name}`")
        started_cpu, started = time.process_time(), time.perf_counter()
        store.client.command(f"INSERT INTO {copy} SELECT * FROM file('{path}', 'Native')")
        cpu_s, wall_s = time.process_time() - started_cpu, time.perf_counter() - started
        rows = store.query(f"SELECT count() FROM {copy}")[0][0]
        store.client.command(f"DROP TABLE {copy}")
        Path(path).unlink()
        per_table[name] = {"rows": rows, "cpu_us_per_span": round(cpu_s / spans * 1e6, 2), "wall_s": round(wall_s, 3)}
        total += cpu_s
    return {"cpu_us_per_span": round(total / spans * 1e6, 2), "tables": per_table}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=150, help="requests of 1,000 spans in the backlog")
    parser.add_argument("--server", action="store_true", help="a server store: the tests' ClickHouse HTTP endpoint")
    parser.add_argument("--normalize", choices=["auto", "python"], default="auto")
    args = parser.parse_args()

    directory = tempfile.mkdtemp(prefix="tracehouse-writer-")
    endpoint = None
    if args.server:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from clickhouse_connect.driver._chdbclient import build_connection_string
        from clickhouse_http import ClickHouseHTTP

        from tracehouse.store.client import embedded_config_path

        engine = build_connection_string(f"{directory}/store", {"config-file": embedded_config_path()})
        endpoint = ClickHouseHTTP(engine, f"{directory}/schemas").start()
        store = Store.open(f"{endpoint.url}/tracehouse")
    else:
        store = Store.open(f"chdb://{directory}/store")
    spool = Spool(f"{directory}/spool", max_bytes=8 << 30)
    rng = random.Random(1)
    request = build_request(1)
    for _ in range(args.requests):
        renew_ids(request, rng)
        spool.append(KIND_TRACES, "", request.SerializeToString())

    wall: dict[str, float] = collections.defaultdict(float)
    cpu: dict[str, float] = collections.defaultdict(float)
    for name in ("command", "query", "insert", "raw_insert"):
        method = getattr(store.client, name)

        def timed(sql, *a, _method=method, **k):
            started, started_cpu = time.perf_counter(), time.process_time()
            try:
                return _method(sql, *a, **k)
            finally:
                kind = _statement_kind(sql)
                wall[kind] += time.perf_counter() - started
                cpu[kind] += time.process_time() - started_cpu

        setattr(store.client, name, timed)

    engine = None if args.normalize == "auto" else False
    writer = Writer(store, spool, RetentionPolicy(store, 30), Metrics(), engine_normalize=engine)
    spans = args.requests * 1000
    started, started_cpu, batches = time.perf_counter(), time.process_time(), 0
    while spool.pending_bytes:
        writer.write(spool.read(spool.committed, writer.batch_bytes))
        batches += 1
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
    top = sorted(cpu, key=cpu.get, reverse=True)[:10]
    under = floor(store, directory, spans)
    print_report(
        {
            "benchmark": "writer",
            "store": "clickhouse-http endpoint" if args.server else "chdb",
            "normalize": args.normalize,
            "spans": spans,
            "batches": batches,
            "stored_spans_per_s": round(spans / seconds),
            "cpu_us_per_span": round(cpu_seconds / spans * 1e6, 1),
            "statements": {
                kind: {"wall_s": round(wall[kind], 3), "cpu_us_per_span": round(cpu[kind] / spans * 1e6, 2)}
                for kind in top
            },
            "floor": under,
            "writer_over_floor": round(cpu_seconds / spans * 1e6 / under["cpu_us_per_span"], 2),
        }
    )
    store.close()
    if endpoint is not None:
        endpoint.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

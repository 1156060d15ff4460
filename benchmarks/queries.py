"""Read latency on a large store: history page, run logs, replay, 30-day statistics.

Fills an embedded store through the normal write path with seeded sample runs spread over
30 days (about 10.6 spans and 2 run rows each, so 100,000 runs are over a million spans), lets
the tables merge (``OPTIMIZE ... FINAL``, the state of a store after its background merges),
then times each read through the read service every face answers with. Prints one JSON object.

    .venv/bin/python benchmarks/queries.py --runs 100000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

from report import print_report

from tracehouse.demo import sample_run
from tracehouse.store import Store, schema
from tracehouse.store.reads import ReadService


def _timed(fn, samples: int) -> dict[str, float]:
    times = []
    for i in range(samples):
        started = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2)}


def _read_files(directory: str) -> int:
    """Read every file of the store once, so timed reads find it in the page cache as a running
    server's working set would be (this VM's memory reclaimer evicts idle files within minutes,
    which turns the first reads of a reused store into disk reads). Returns the bytes read."""
    total = 0
    for root, _, names in os.walk(directory):
        for name in names:
            with contextlib.suppress(OSError), open(os.path.join(root, name), "rb") as f:
                while chunk := f.read(1 << 20):
                    total += len(chunk)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000, help="runs per write")
    parser.add_argument("--samples", type=int, default=200, help="timed reads of each kind")
    parser.add_argument(
        "--store", help="embedded store directory to fill, or to reuse when it already holds runs (default: a new one)"
    )
    args = parser.parse_args()

    directory = args.store or tempfile.mkdtemp(prefix="tracehouse-queries-")
    store = Store.open(f"chdb://{directory}")
    rng = random.Random(7)
    now = datetime.now(UTC)
    run_ids: list[str] = [
        run_id
        for (run_id,) in store.query(
            f"SELECT RunId FROM {store.table(schema.RUNS)} FINAL "
            f"WHERE ParentRunId = '' AND {schema.RUN_EXPIRES} > now()"  # a reused store's oldest runs expire
        )
    ]
    reused = bool(run_ids)
    filled = time.perf_counter()
    starts = sorted(now - timedelta(seconds=rng.uniform(60, 30 * 86_400)) for _ in range(args.runs))
    for offset in range(0, 0 if reused else args.runs, args.batch):
        nodes, events = [], []
        for i in range(offset, min(offset + args.batch, args.runs)):
            sample = sample_run(
                i, started_at=starts[i], agent=("trip-planner", "support-bot", "researcher")[i % 3], fail=i % 9 == 0
            )
            nodes += sample.nodes
            events += sample.events
            run_ids.append(sample.run_id)
        store.write(nodes, events)
    fill_seconds = time.perf_counter() - filled
    if not reused:  # a reused store was merged when it was filled
        for table in (schema.SPANS, schema.RUNS, schema.EVENTS, schema.AGENT_DAILY):
            store.client.command(f"OPTIMIZE TABLE {store.table(table)} FINAL")
    run_ids.sort()
    spans = store.query(f"SELECT count() FROM {store.table(schema.SPANS)}")[0][0]
    run_rows = store.query(f"SELECT count() FROM {store.table(schema.RUNS)}")[0][0]

    warmed = _read_files(directory)
    reads = ReadService(store, "default")
    picks = [rng.choice(run_ids) for _ in range(args.samples)]
    month = now - timedelta(days=30)
    results = {
        "history_page": _timed(lambda i: reads.history(skip=(i % 5) * 100, limit=100), args.samples),
        "history_page_agent": _timed(lambda i: reads.history(agent="researcher", limit=100), args.samples),
        "run_logs": _timed(lambda i: reads.logs(picks[i]), args.samples),
        "replay": _timed(lambda i: reads.events(picks[i]), args.samples),
        "stats_30_days": _timed(lambda i: reads.stats("agent", since=month), max(20, args.samples // 10)),
    }
    print_report(
        {
            "benchmark": "queries",
            "runs_written": args.runs,
            "run_rows": run_rows,
            "spans": spans,
            "fill_seconds": round(fill_seconds, 1),
            "store_bytes_read_before_timing": warmed,
            "latency": results,
            "targets_ms_p95": {"history_page": 50, "run_logs": 50, "replay": 100, "stats_30_days": 300},
        },
    )
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

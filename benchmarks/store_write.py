"""Store write and history-list latency on the embedded engine.

Writes seeded sample runs (about 10 spans and 10 events each) in batches through
``Store.write`` (insert spans and events, then refresh the run rows and daily rollups they
touch), then times the history list. Prints one JSON object.

    .venv/bin/python benchmarks/store_write.py --runs 20000 --batch 500

The rows are built from pydantic models here; the receiver's hot path builds columns directly.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time

from report import print_report

from tracehouse.demo import sample_runs
from tracehouse.store import Store, queries, runs_seen


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _bytes_on_disk(store: Store) -> dict[str, int]:
    """Compressed bytes of each table's active parts, after merging them (for sizing)."""
    database = store.layout.database
    tables = [t for (t,) in store.query("SELECT name FROM system.tables WHERE database = {d:String} "
                                        "AND engine LIKE '%MergeTree'", {"d": database})]  # fmt: skip
    for table in tables:
        store.client.command(f"OPTIMIZE TABLE {database}.{table} FINAL")
    rows = store.query(
        "SELECT table, sum(bytes_on_disk) FROM system.parts WHERE database = {d:String} AND active GROUP BY table",
        {"d": database},
    )
    return {table: int(size) for table, size in sorted(rows)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500, help="runs per Store.write call")
    parser.add_argument("--queries", type=int, default=200, help="history pages to time")
    parser.add_argument("--store", help="store DSN (default: a temporary embedded store)")
    args = parser.parse_args()

    dsn = args.store or f"chdb://{tempfile.mkdtemp(prefix='tracehouse-bench-')}"
    # Runs spread over 30 days, written in start order as a live receiver gets them.
    samples = sorted(sample_runs(args.runs, seed=1, days=30), key=lambda s: s.nodes[0].started_at)
    spans = sum(len(s.nodes) for s in samples)
    with Store.open(dsn) as store:
        insert_s = refresh_s = 0.0
        for start in range(0, len(samples), args.batch):
            chunk = samples[start : start + args.batch]
            nodes = [n for s in chunk for n in s.nodes]
            events = [e for s in chunk for e in s.events]
            t0 = time.perf_counter()
            store.insert_spans(nodes)
            store.insert_events(events)
            t1 = time.perf_counter()
            store.refresh_agent_daily(store.refresh_runs(runs_seen(nodes)))
            refresh_s += time.perf_counter() - t1
            insert_s += t1 - t0
        latencies = []
        for i in range(args.queries):
            t0 = time.perf_counter()
            queries.list_runs(store, "default", top_level=True, limit=100, offset=(i % 10) * 100)
            latencies.append((time.perf_counter() - t0) * 1000)
        disk = _bytes_on_disk(store)
    result = {
        "benchmark": "store_write",
        "runs": args.runs,
        "spans": spans,
        "batch_runs": args.batch,
        "insert_spans_per_s": round(spans / insert_s),
        "refresh_runs_per_s": round(args.runs * 2 / refresh_s),  # each sample has a sub-agent run
        "write_spans_per_s": round(spans / (insert_s + refresh_s)),
        "history_page_ms_p50": round(statistics.median(latencies), 2),
        "history_page_ms_p95": round(_percentile(latencies, 0.95), 2),
        "disk_bytes_by_table": disk,
        "disk_bytes_per_span": round(sum(disk.values()) / spans),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

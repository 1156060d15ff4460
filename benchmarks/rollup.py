"""The daily rollup's refresh on a busy day: one writer batch's minutes against the whole day.

Fills the runs table of an embedded store with ``--runs`` runs of today, spread over the hours
so far (5 agents), as a sustained load leaves it, merges it, then times what a writer batch
does after storing a second's worth of new runs: recompute the rollup slices of the current
minute (tracehouse's refresh), and, for comparison, recompute the whole day from ``runs FINAL``
(what a per-day rollup would do on every batch). Prints one JSON object.

    .venv/bin/python benchmarks/rollup.py --runs 1000000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from string import Template

from report import print_report

from tracehouse.store import Store, rollups, schema


def _timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs of today already stored")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    store = Store.open(f"chdb://{tempfile.mkdtemp(prefix='tracehouse-rollup-')}/store")
    runs, daily = store.table(schema.RUNS), store.table(schema.AGENT_DAILY)
    now = datetime.now(UTC).replace(tzinfo=None)
    seconds_today = max(60, int((now - now.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()))
    store.client.command(
        f"""INSERT INTO {runs} (Tenant, RunId, AgentName, Status, StartedAt, EndedAt, DurationNs, NodeCount,
            LlmCalls, ToolCalls, InputTokens, OutputTokens, CostUsd, TtlDays, Version)
        SELECT 'default', concat('run-', toString(number)), concat('agent-', toString(number % 5)), 'completed',
               now64(9) - toIntervalMillisecond(number * {seconds_today * 1000} DIV {args.runs}), now64(9),
               2000000000, 9, 3, 6, 1500, 300, 0.002, 30, 1
        FROM numbers({args.runs})"""
    )
    store.client.command(f"OPTIMIZE TABLE {runs} FINAL")
    store.refresh_agent_daily([("default", now)])  # warm the caches
    minute = _timed(lambda: store.refresh_agent_daily([("default", now)]), args.repeat)
    whole_day = Template(rollups.DAILY_ROWS).substitute(
        daily=daily,
        runs=runs,
        runs_where="Tenant = 'default' AND toDate(StartedAt) = today()",
        daily_where="Tenant = 'default' AND Day = today()",
    )
    day = _timed(lambda: store.client.command(whole_day), args.repeat)
    print_report(
        {
            "benchmark": "rollup",
            "runs_today": args.runs,
            "refresh_of_one_minute_s": round(minute, 4),
            "recompute_of_the_whole_day_s": round(day, 4),
        },
    )
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The receiver alone: the CPU time of acknowledging one span, from request bytes to the spool.

Calls the transport-independent receiver (decode, the per-span checks, the durable spool
append) in this process, with no network, no writer and no store, on ``--requests`` requests
of the ingest benchmark (1,000 GenAI spans each, new ids and current times every request),
``--rounds`` times over. Reports the process's CPU time per span: the part of a server's CPU
that grows with what clients send, whatever the writer does. Prints one JSON object.

    .venv/bin/python benchmarks/receiver.py --requests 40 --rounds 5
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

from ingest import build_request, renew_ids
from report import print_report

from tracehouse.auth import Auth
from tracehouse.ingest import otlp
from tracehouse.ingest.metrics import Metrics
from tracehouse.ingest.receiver import Receiver
from tracehouse.ingest.spool import Spool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=40, help="distinct requests of 1,000 spans")
    parser.add_argument("--rounds", type=int, default=5, help="times each request is sent")
    args = parser.parse_args()
    request, rng = build_request(1), random.Random(1)
    bodies = []
    for _ in range(args.requests):
        renew_ids(request, rng)
        bodies.append(request.SerializeToString())
    spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    with tempfile.TemporaryDirectory() as directory:
        spool = Spool(directory, max_bytes=1 << 40)
        receiver = Receiver(spool, Auth({}), Metrics())
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(args.rounds):
            for body in bodies:
                receiver.export(otlp.TRACES, body, otlp.PROTOBUF, "", "bench")
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        spool.close()
    total = spans * args.requests * args.rounds
    print_report(
        {
            "spans": total,
            "cpu_us_per_span": round(cpu / total * 1e6, 2),
            "spans_per_s_one_thread": round(total / wall),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

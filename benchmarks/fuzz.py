"""A long fuzz run against a real `tracehouse serve` on the embedded store (or one at --url).

Sends --cases requests (default 100,000) from ``fuzz_requests.py``, one after another: generated
trace and logs requests, hand-made OTLP/JSON, mutated bytes of valid requests, and valid
requests, over HTTP (protobuf and JSON, gzip'd or not) and gRPC (gzip'd or not). Every
--run-every cases it also sends a valid run (a root span and a child, new run and trace ids),
and checks along the way that each one acknowledged is found by the read API within
--stored-within seconds, and before the writer has failed twice since the last one found (it
retries the same records for ever). When one is not, the writer has stopped storing: the run
notes between which cases (one of them made it stop) and what the writer said, and, for a
server it started, goes on with a new server on a new store (at most --restarts times); once
none may be started, it goes on fuzzing the receiver alone. Likewise when the server dies.

Prints one JSON object: the answers per channel (HTTP status or gRPC status), the server errors
(HTTP 5xx but 503 with Retry-After, gRPC INTERNAL or UNKNOWN, no answer at all) with the first
cases that caused them, the crashes, the writer stops, the valid runs sent and stored, and the
rate. Exits 1 when a property broke.

    .venv/bin/python benchmarks/fuzz.py
    .venv/bin/python benchmarks/fuzz.py --cases 2000 --seed 7
    .venv/bin/python benchmarks/fuzz.py --url http://127.0.0.1:4318 --grpc 127.0.0.1:4317
    .venv/bin/python benchmarks/fuzz.py --seed 7 --show-case 1234   # case 1234 of seed 7, again

Case ``i`` of seed ``s`` is made from ``random.Random(f"{s}:{i}")``: --show-case writes its body
to a file and says how to send it.
"""

from __future__ import annotations

import argparse
import collections
import re
import signal
import subprocess
import sys
import tempfile
import time

import fuzz_requests as fuzz
from report import print_report

KINDS = {"generated traces": 30, "generated logs": 10, "hand-made json": 15, "mutated": 35, "valid": 10}
RUN_CHANNELS = ("http/protobuf", "grpc", "http/protobuf+gzip", "grpc+gzip")


def make_case(seed: int, index: int) -> tuple[str, fuzz.Case]:
    source = fuzz.RandomSource(f"{seed}:{index}")
    kind = source.rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
    if kind == "generated traces":
        return kind, fuzz.generated_case(source, "traces")
    if kind == "generated logs":
        return kind, fuzz.generated_case(source, "logs")
    if kind == "hand-made json":
        return kind, fuzz.json_case(source)
    if kind == "mutated":
        return kind, fuzz.mutated_case(source)
    if source.chance(4):
        return kind, fuzz.encode(source, "logs", fuzz.logs_request_valid(source))
    return kind, fuzz.encode(source, "traces", fuzz.trace_request_valid(source))


class Served:
    """A `tracehouse serve` this script runs: started again on a new store when asked."""

    def __init__(self, batch_interval: float | None) -> None:
        self.batch_interval = batch_interval
        self.output: collections.deque[str] = collections.deque(maxlen=500)
        self.process: subprocess.Popen | None = None
        self.data = ""

    def start(self) -> tuple[str, str]:
        self.stop()
        self.output.clear()
        self.data = tempfile.mkdtemp(prefix="tracehouse-fuzz-")
        command = [sys.executable, "-m", "tracehouse.cli", "serve", "--store", f"chdb://{self.data}/store"]
        command += ["--grpc-port", "0", "--http-port", "0"]
        if self.batch_interval is not None:
            command += ["--batch-interval", str(self.batch_interval)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in self.process.stdout:
            self.output.append(line)
            ready = re.search(r"OTLP/gRPC on ([\d.]+:\d+), OTLP/HTTP and API on (http://[\d.:]+)", line)
            if ready:
                fuzz.tail(self.process.stdout, self.output)
                return ready.group(2), ready.group(1)
        raise RuntimeError("the server did not start:\n" + "".join(self.output))

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)  # a stuck writer would wait out its drain budget
            self.process.wait(60)


def bucket(outcome: fuzz.Outcome) -> str:
    if outcome.code == "503" and outcome.allowed:
        return "503 retry later"
    return outcome.code if outcome.allowed else f"{outcome.code} (server error)"


def show_case(seed: int, index: int, out: str | None) -> int:
    kind, case = make_case(seed, index)
    path = out or f"fuzz-case-{seed}-{index}.bin"
    with open(path, "wb") as f:
        f.write(case.body)
    print(f"{kind}: {case!r}")
    if case.transport == "http":
        content_type = fuzz.JSON if case.json else fuzz.PROTOBUF
        encoding = " -H 'Content-Encoding: gzip'" if case.gzip else ""
        print(
            f"curl -sS -H 'Content-Type: {content_type}'{encoding} --data-binary @{path}"
            f" http://127.0.0.1:4318{fuzz.HTTP_PATHS[case.signal]}"
        )
    else:
        print(f"gRPC {fuzz.GRPC_METHODS[case.signal]}, the bytes of {path}" + (", gzip" if case.gzip else ""))
    return 0


class Fuzzing:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.served = None if args.url else Served(args.batch_interval)
        self.client: fuzz.Client | None = None
        self.outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.kinds: collections.Counter = collections.Counter()
        self.errors: list[dict] = []
        self.error_count = 0
        self.crashes: list[dict] = []
        self.stops: list[dict] = []  # the writer stopped storing
        self.runs_sent = self.runs_stored = self.runs_refused = self.runs_lost = 0
        self.pending: list[tuple[int, str, float]] = []  # (case, run id, when sent) not yet found
        self.last_stored = -1  # the case after which the last run found was sent (or the last case before this server)
        self.write_errors_at_last_store = 0.0
        self.storing = True  # False once the writer stopped and no new server may be started
        self.restarts = 0
        self.accepted = collections.Counter()

    def connect(self) -> None:
        if self.client is not None:
            self.client.close()
        http, grpc = (self.args.url, self.args.grpc) if self.served is None else self.served.start()
        self.client = fuzz.Client(http, grpc, timeout=self.args.timeout)

    def alive(self) -> bool:
        return self.served.alive() if self.served else self.client.alive()

    def said(self, *about: str) -> list[str]:
        """The server's last log lines (that say one of ``about``)."""
        lines = fuzz.what_it_said(list(self.served.output), 50) if self.served else []
        return [line for line in lines if not about or any(a in line for a in about)][-3:]

    def restart(self, index: int) -> bool:
        """A new server on a new store, from case ``index`` + 1, if this script runs the server
        and may start it again."""
        self.runs_lost += len(self.pending)
        self.pending = []
        if self.served is None or self.restarts >= self.args.restarts:
            return False
        self.save_counts()
        self.restarts += 1
        self.last_stored, self.write_errors_at_last_store = index, 0.0
        self.connect()
        return True

    def save_counts(self) -> None:
        if self.client is not None and self.alive():
            for name in ("traces", "logs"):
                self.accepted[name] += self.client.metric(f'tracehouse_items_accepted_total{{signal="{name}"}}')
            self.accepted["store write errors"] += self.client.metric("tracehouse_store_write_errors_total")

    def check_runs(self, index: int) -> bool:
        """Find the runs sent; False once one is later than --stored-within, or the writer has
        failed twice since the last one found (it retries the same records for ever): the writer
        stopped, noticed at case ``index``."""
        now = time.monotonic()
        write_errors = self.client.metric("tracehouse_store_write_errors_total")
        left = []
        for sent_after, run_id, sent in self.pending:
            if now - sent > 0.5 and self.client.run_stored(run_id):
                self.runs_stored += 1
                self.last_stored = max(self.last_stored, sent_after)
                self.write_errors_at_last_store = write_errors
            else:
                left.append((sent_after, run_id, sent))
        self.pending = left
        late = left and now - left[0][2] > self.args.stored_within
        failing = left and now - left[0][2] > 1 and write_errors - self.write_errors_at_last_store >= 2
        if late or failing:
            # The run sent after case last_stored was stored, the one after left[0][0] not: one of
            # the cases in between stopped the writer.
            self.stops.append(
                {
                    "cases": [self.last_stored + 1, left[0][0]],
                    "noticed_at_case": index,
                    "writer_said": self.said("records failed", "Error:", "Exception:"),
                }
            )
            return False
        return True

    def send_run(self, index: int) -> None:
        run_id = fuzz.new_run_id()
        channel = RUN_CHANNELS[(index // self.args.run_every) % len(RUN_CHANNELS)]
        sent = self.client.send_run(run_id, channel, deadline=10)
        if sent.code in ("200", "OK"):
            self.runs_sent += 1
            self.pending.append((index, run_id, time.monotonic()))
        else:
            self.runs_refused += 1

    def run(self) -> dict:
        args = self.args
        self.connect()
        started = last_check = last_progress = time.monotonic()
        for index in range(args.cases):
            kind, case = make_case(args.seed, index)
            self.kinds[kind] += 1
            outcome = self.client.send(case)
            self.outcomes[case.channel][bucket(outcome)] += 1
            if not outcome.allowed:
                self.error_count += 1
                if len(self.errors) < 20:
                    self.errors.append(
                        {
                            "case": index,
                            "kind": kind,
                            "channel": case.channel,
                            "answer": outcome.code,
                            "detail": outcome.detail[:300],
                            "made_of": case.trail[:400],
                        }
                    )
            now = time.monotonic()
            checking = now - last_check > 2
            if (checking or not outcome.allowed) and not self.alive():
                self.crashes.append({"case": index, "channel": case.channel, "server_said": self.said()})
                print(f"the server died (case {index} or before)", file=sys.stderr)
                if not self.restart(index):
                    break
                continue
            if self.storing and index % args.run_every == 0:
                self.send_run(index)
            if checking and self.storing:
                last_check = now
                if not self.check_runs(index):
                    print(f"the writer stopped storing (cases {self.stops[-1]['cases']})", file=sys.stderr)
                    self.storing = self.restart(index)  # or keep fuzzing the receiver alone
            if now - last_progress > 10:
                last_progress = now
                print(
                    f"{index + 1} cases, {(index + 1) / (now - started):.0f}/s, {self.error_count} server errors, "
                    f"{len(self.crashes)} crashes, {len(self.stops)} writer stops, "
                    f"{self.runs_stored}/{self.runs_sent} runs stored",
                    file=sys.stderr,
                )
        sending = time.monotonic() - started
        while self.pending and self.alive() and self.check_runs(args.cases - 1):  # the last runs sent
            time.sleep(0.5)
        if self.pending and not self.alive():
            self.crashes.append({"case": args.cases - 1, "server_said": self.said()})
        self.runs_lost += len(self.pending)
        self.save_counts()
        if self.served:
            self.served.stop()
        self.client.close()
        cases = sum(self.kinds.values())
        return {
            "benchmark": "fuzz",
            "seed": args.seed,
            "cases": cases,
            "seconds_sending": round(sending, 1),
            "cases_per_s": round(cases / sending, 1),
            "cases_by_kind": dict(self.kinds.most_common()),
            "answers_by_channel": {channel: dict(c.most_common()) for channel, c in sorted(self.outcomes.items())},
            "server_errors": self.error_count,
            "first_server_errors": self.errors,
            "crashes": self.crashes,
            "writer_stops": self.stops,  # each: one of "cases" (first, last) made the writer stop
            "server_restarts": self.restarts,
            "valid_runs_sent": self.runs_sent,
            "valid_runs_stored": self.runs_stored,
            "valid_runs_not_stored": self.runs_lost,
            "valid_runs_refused": self.runs_refused,
            "items_acknowledged": {name: int(self.accepted[name]) for name in ("traces", "logs")},
            "store_write_errors": int(self.accepted["store write errors"]),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-every", type=int, default=50, help="send a valid run every this many cases")
    parser.add_argument("--url", help="the OTLP/HTTP and API base URL of a running server (default: start one)")
    parser.add_argument("--grpc", default="127.0.0.1:4317", help="its OTLP/gRPC host:port, with --url")
    parser.add_argument("--batch-interval", type=float, help="the started server's --batch-interval")
    parser.add_argument("--stored-within", type=float, default=20, help="seconds a valid run may take to be stored")
    parser.add_argument("--restarts", type=int, default=20, help="new servers at most, after crashes and stops")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for an answer")
    parser.add_argument("--show-case", type=int, metavar="I", help="write case I's body to a file and stop")
    parser.add_argument("--out", help="where --show-case writes the body")
    args = parser.parse_args()
    if args.show_case is not None:
        return show_case(args.seed, args.show_case, args.out)
    report = Fuzzing(args).run()
    print_report(report)
    broken = report["server_errors"] or report["crashes"] or report["writer_stops"] or report["valid_runs_refused"]
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())

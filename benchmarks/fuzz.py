"""A long fuzz run against a real `tracehouse serve` on the embedded store (or one at --url).

Sends --cases requests (default 100,000) from ``fuzz_requests.py``: generated trace and logs
requests, hand-made OTLP/JSON, mutated bytes of valid requests, and valid requests, over HTTP
(protobuf and JSON, gzip'd or not) and gRPC (gzip'd or not). The cases are made one after
another on one thread and sent from --workers threads at once, case ``i`` to server
``i % --servers`` (with several servers, each on its own store). After every --run-every cases
a server is sent, it is also sent a valid run (a root span and a child, new run and trace ids),
and the script checks along the way that each one acknowledged is found by the read API. The
writer has stopped storing when it has failed twice since the last run found (it retries the
same records for ever), when a run is later than --stored-within seconds and the writer stored
no batch for as long, or when a run is later than ten times --stored-within. The run then
notes between which cases (one of them, sent to that server, made it stop: a case answered
before a run was sent is ahead of it in the spool) and what the writer said, and, for a server
it started, goes on with a new server on a new store (at most --restarts times); once none may
be started, it goes on fuzzing that receiver alone. Likewise when a server dies. While a
writer is more than --stored-within behind, no case is sent until it catches up.

Where the time goes: a small valid request is answered in 2-5 ms; the cost is the server's CPU
for the large cases (megabytes of OTLP/JSON parsed by protobuf's json_format, up to the 20 MB
limit, and the writer storing them), so sending from several threads mostly overlaps making
the cases with the server's work, and several servers help only on idle cores.

--time-limit stops sending after that many seconds (SIGTERM and Ctrl-C likewise); the report
then says after how many cases, and ``case_range`` which ones were sent: ``--first-case`` goes
on from there, with the same seed (a case does not depend on the cases before it).

Prints one JSON object: the answers per channel (HTTP status or gRPC status), the server errors
(HTTP 5xx but 503 with Retry-After, gRPC INTERNAL or UNKNOWN, no answer at all) with the first
cases that caused them, the crashes, the writer stops, the valid runs sent and stored, and the
rate. Exits 1 when a property broke.

    .venv/bin/python benchmarks/fuzz.py
    .venv/bin/python benchmarks/fuzz.py --cases 2000 --seed 7
    .venv/bin/python benchmarks/fuzz.py --cases 100000 --seed 16 --workers 4 --servers 2 --time-limit 3600
    .venv/bin/python benchmarks/fuzz.py --url http://127.0.0.1:4318 --grpc 127.0.0.1:4317
    .venv/bin/python benchmarks/fuzz.py --seed 7 --show-case 1234   # case 1234 of seed 7, again

Case ``i`` of seed ``s`` is made from ``random.Random(f"{s}:{i}")`` (its times from the clock
when it is made), whatever the workers and servers: --show-case writes its body to a file and
says how to send it.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
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


class Target:
    """One server the cases go to, and what is known of its writer: the valid runs sent to it
    and not yet found, each with the cases that may be before it in the spool."""

    def __init__(self, number: int, served: Served | None) -> None:
        self.number = number
        self.served = served
        self.client: fuzz.Client | None = None
        # (first case maybe not yet answered, last case sent, run id, when sent) of the runs
        # sent and not yet found: the cases before the first were answered before the run was
        # sent, so they are ahead of it in the spool; those after the last were sent after it.
        self.pending: list[tuple[int, int, str, float]] = []
        self.suspects_from = 0  # the first case that may be behind the last run found, in the spool
        self.write_errors_at_last_store = 0.0
        self.storing = True  # False once the writer stopped and no new server may be started
        self.cases = 0  # sent to its current server
        self.batches, self.batch_seen = 0.0, time.monotonic()  # batches stored, when that last changed

    def connect(self, args: argparse.Namespace) -> None:
        if self.client is not None:
            self.client.close()
        http, grpc = (args.url, args.grpc) if self.served is None else self.served.start()
        self.client = fuzz.Client(http, grpc, timeout=args.timeout)
        self.pending, self.cases, self.write_errors_at_last_store = [], 0, 0.0
        self.batches, self.batch_seen = 0.0, time.monotonic()

    def alive(self) -> bool:
        return self.served.alive() if self.served else self.client.alive()

    def said(self, *about: str) -> list[str]:
        """The server's last log lines (that say one of ``about``)."""
        lines = fuzz.what_it_said(list(self.served.output), 50) if self.served else []
        return [line for line in lines if not about or any(a in line for a in about)][-3:]


class Fuzzing:
    """Makes the cases one after another (case ``i`` from its seed alone) and sends them from
    --workers threads, case ``i`` to server ``i % --servers``; answers, checks and restarts are
    handled here, between sends, by this one thread."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        count = 1 if args.url else args.servers
        self.targets = [Target(n, None if args.url else Served(args.batch_interval)) for n in range(count)]
        self.outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.kinds: collections.Counter = collections.Counter()
        self.errors: list[dict] = []
        self.error_count = 0
        self.crashes: list[dict] = []
        self.stops: list[dict] = []  # the writer stopped storing
        self.runs_sent = self.runs_stored = self.runs_refused = self.runs_lost = 0
        self.restarts = 0
        self.accepted = collections.Counter()
        self.in_flight: dict[concurrent.futures.Future, tuple[int, str, fuzz.Case, Target]] = {}
        self.pool = concurrent.futures.ThreadPoolExecutor(args.workers, thread_name_prefix="fuzz-send")
        self.stopping = ""  # why sending stopped before --cases
        self.slowest_run = 0.0  # seconds from sending a valid run to finding it, at most
        self.waited = 0.0  # seconds no case was sent because a writer was behind

    def first_unanswered(self, target: Target, otherwise: int) -> int:
        return min((index for index, _, _, t in self.in_flight.values() if t is target), default=otherwise)

    def drain(self) -> None:
        """Wait for every case in flight and take its answer."""
        while self.in_flight:
            self.collect(concurrent.futures.FIRST_COMPLETED)

    def collect(self, return_when: str) -> None:
        done, _ = concurrent.futures.wait(list(self.in_flight), return_when=return_when)
        for future in sorted(done, key=lambda f: self.in_flight[f][0]):
            index, kind, case, target = self.in_flight.pop(future)
            self.answered(index, kind, case, target, future.result())

    def answered(self, index: int, kind: str, case: fuzz.Case, target: Target, outcome: fuzz.Outcome) -> None:
        self.kinds[kind] += 1
        self.outcomes[case.channel][bucket(outcome)] += 1
        if outcome.allowed:
            return
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
            if len(self.targets) > 1:
                self.errors[-1]["server"] = target.number
            said = f"{outcome.code} {outcome.detail[:200]}"
            print(f"server error at case {index} ({case.channel}): {said}", file=sys.stderr)

    def restart(self, target: Target, index: int) -> bool:
        """A new server on a new store for ``target``, for the cases after ``index``, if this
        script runs the server and may start it again."""
        self.runs_lost += len(target.pending)
        target.pending = []
        if target.served is None or self.restarts >= self.args.restarts:
            return False
        self.save_counts(target)
        self.restarts += 1
        target.connect(self.args)
        target.suspects_from = index + 1
        return True

    def save_counts(self, target: Target) -> None:
        if target.client is not None and target.alive():
            for name in ("traces", "logs"):
                self.accepted[name] += target.client.metric(f'tracehouse_items_accepted_total{{signal="{name}"}}')
            self.accepted["store write errors"] += target.client.metric("tracehouse_store_write_errors_total")

    def check_runs(self, target: Target, index: int) -> bool:
        """Find the runs sent; False once the writer stopped, noticed at case ``index``: it has
        failed twice since the last run found (it retries the same records for ever), or a run
        is later than --stored-within and the writer stored no batch for as long (stuck), or a
        run is later than ten times --stored-within (a writer that stores, but never that)."""
        now = time.monotonic()
        client = target.client
        write_errors = client.metric("tracehouse_store_write_errors_total")
        batches = client.metric("tracehouse_insert_seconds_count")
        if batches != target.batches:
            target.batches, target.batch_seen = batches, now
        left = []
        for first, last, run_id, sent in target.pending:
            if now - sent > 0.5 and client.run_stored(run_id):
                self.runs_stored += 1
                self.slowest_run = max(self.slowest_run, now - sent)
                target.suspects_from = max(target.suspects_from, first)
                target.write_errors_at_last_store = write_errors
            else:
                left.append((first, last, run_id, sent))
        target.pending = left
        waited = now - left[0][3] if left else 0.0
        late = waited > self.args.stored_within and (
            now - target.batch_seen > self.args.stored_within or waited > 10 * self.args.stored_within
        )
        failing = waited > 1 and write_errors - target.write_errors_at_last_store >= 2
        if late or failing:
            # The run found last had every case before suspects_from ahead of it in the spool,
            # the one not found was sent after case left[0][1]: one of the cases in between that
            # went to this server made the writer stop.
            stop = {
                "cases": [target.suspects_from, left[0][1]],
                "noticed_at_case": index,
                "why": "write errors" if failing else f"a run not stored in {waited:.0f} s",
                "writer_said": target.said("records failed", "Error:", "Exception:"),
            }
            if len(self.targets) > 1:
                every = len(self.targets)
                stop |= {"server": target.number, "its_cases": f"those i with i % {every} == {target.number}"}
            self.stops.append(stop)
            return False
        return True

    def behind(self) -> bool:
        """Whether a writer is more than --stored-within behind (its oldest run not found yet):
        then no case is sent until it catches up, so the spool does not grow without end."""
        now = time.monotonic()
        return any(t.storing and t.pending and now - t.pending[0][3] > self.args.stored_within for t in self.targets)

    def send_run(self, target: Target, index: int) -> None:
        """A valid run to ``target``, after case ``index`` was sent to it (and before the next)."""
        run_id = fuzz.new_run_id()
        nth = index // len(self.targets) // self.args.run_every
        sent = target.client.send_run(run_id, RUN_CHANNELS[nth % len(RUN_CHANNELS)], deadline=10)
        if sent.code in ("200", "OK"):
            self.runs_sent += 1
            target.pending.append((self.first_unanswered(target, index + 1), index, run_id, time.monotonic()))
        else:
            self.runs_refused += 1

    def look(self, targets: list[Target], index: int) -> bool:
        """Whether each of ``targets`` lives and stores; a new server for one that does not, after
        every case in flight is answered (so none is cut off by it). False when sending should
        stop (a server died and none may be started again)."""
        for target in targets:
            if not target.alive():
                self.drain()
                self.crashes.append(
                    {"case": index, "server": target.number, "server_said": target.said()}
                    if len(self.targets) > 1
                    else {"case": index, "server_said": target.said()}
                )
                print(f"a server died (case {index} or before)", file=sys.stderr)
                if not self.restart(target, index):
                    return False
            elif target.storing and not self.check_runs(target, index):
                print(f"the writer stopped storing (cases {self.stops[-1]['cases']})", file=sys.stderr)
                self.drain()
                target.storing = self.restart(target, index)  # or keep fuzzing the receiver alone
        return True

    def catch_up(self, index: int) -> bool:
        """Send nothing while a writer is behind; False when sending should stop."""
        waiting_since = time.monotonic()
        while self.behind() and not self.stopping:
            time.sleep(0.5)
            self.collect(concurrent.futures.ALL_COMPLETED)
            if not self.look(self.targets, index):
                return False
        self.waited += time.monotonic() - waiting_since
        return True

    def stop_sending(self, signum: int, frame: object) -> None:
        self.stopping = f"signal {signal.Signals(signum).name}"

    def run(self) -> dict:
        args = self.args
        for target in self.targets:
            target.connect(args)
            target.suspects_from = args.first_case
        signal.signal(signal.SIGTERM, self.stop_sending)
        signal.signal(signal.SIGINT, self.stop_sending)
        window = 2 * args.workers  # cases made ahead of the senders, so none waits for the next
        started = last_check = last_progress = time.monotonic()
        index = args.first_case - 1
        for index in range(args.first_case, args.cases):
            if self.stopping or args.time_limit and time.monotonic() - started > args.time_limit:
                self.stopping = self.stopping or f"time limit ({args.time_limit:g} s)"
                index -= 1
                break
            target = self.targets[index % len(self.targets)]
            kind, case = make_case(args.seed, index)
            future = self.pool.submit(target.client.send, case)
            self.in_flight[future] = (index, kind, case, target)
            target.cases += 1
            if target.storing and (index // len(self.targets)) % args.run_every == 0:
                self.send_run(target, index)
            errors = self.error_count
            while len(self.in_flight) >= window:
                self.collect(concurrent.futures.FIRST_COMPLETED)
            now = time.monotonic()
            # A server error may be the last answer of a dying server: look at once.
            if now - last_check > 2 or self.error_count > errors:
                last_check = now
                if not self.look(self.targets, index) or not self.catch_up(index):
                    break
                now = time.monotonic()
            if now - last_progress > 10:
                last_progress = now
                done = index + 1 - args.first_case
                print(
                    f"{done} cases (to case {index}), {done / (now - started):.0f}/s, "
                    f"{self.error_count} server errors, {len(self.crashes)} crashes, {len(self.stops)} writer stops, "
                    f"{self.runs_stored}/{self.runs_sent} runs stored",
                    file=sys.stderr,
                )
        self.drain()
        sending = time.monotonic() - started
        self.look(self.targets, index)
        for target in self.targets:  # the last runs sent
            while target.pending and target.alive() and self.check_runs(target, index):
                time.sleep(0.5)
            if target.pending and not target.alive():
                self.crashes.append({"case": index, "server_said": target.said()})
            self.runs_lost += len(target.pending)
            self.save_counts(target)
            if target.served:
                target.served.stop()
            target.client.close()
        self.pool.shutdown()
        cases = sum(self.kinds.values())
        report = {
            "benchmark": "fuzz",
            "seed": args.seed,
            "cases": cases,
            "case_range": [args.first_case, index],
            "servers": len(self.targets),
            "workers": args.workers,
            "seconds_sending": round(sending, 1),
            "cases_per_s": round(cases / sending, 1),
            "seconds_waiting_for_writers": round(self.waited, 1),
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
            "slowest_valid_run_stored_s": round(self.slowest_run, 1),
            "items_acknowledged": {name: int(self.accepted[name]) for name in ("traces", "logs")},
            "store_write_errors": int(self.accepted["store write errors"]),
        }
        if self.stopping:
            report["stopped_early"] = f"by {self.stopping}, after {cases} of {args.cases - args.first_case} cases"
        return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--first-case", type=int, default=0, help="start at this case of the seed (to go on where a run stopped)"
    )
    parser.add_argument("--run-every", type=int, default=50, help="send a valid run every this many cases")
    parser.add_argument("--url", help="the OTLP/HTTP and API base URL of a running server (default: start one)")
    parser.add_argument("--grpc", default="127.0.0.1:4317", help="its OTLP/gRPC host:port, with --url")
    parser.add_argument("--batch-interval", type=float, help="the started server's --batch-interval")
    parser.add_argument("--stored-within", type=float, default=20, help="seconds a valid run may take to be stored")
    parser.add_argument("--workers", type=int, default=4, help="threads sending cases at once")
    parser.add_argument("--servers", type=int, default=1, help="servers to start, each sent every this-many-th case")
    parser.add_argument("--time-limit", type=float, help="stop sending after this many seconds, and report")
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

"""Fuzzing a real `tracehouse serve` with property-based OTLP requests (hypothesis).

Every example is a batch of one to three requests from ``benchmarks/fuzz_requests.py``
(structure-aware trace and logs requests over HTTP/protobuf, HTTP/JSON and gRPC, gzip'd or not;
hand-made OTLP/JSON; mutated bytes of valid requests), sent to one server on the embedded store.
The properties, after every batch:

- no answer is a server error: no HTTP 5xx but 503 with Retry-After (backpressure), no gRPC
  INTERNAL or UNKNOWN (UNAVAILABLE and RESOURCE_EXHAUSTED are backpressure and limits), and
  every request gets an answer;
- the server process is alive and healthy;
- the writer still stores: a valid run (a root span and a child, new run and trace ids) sent
  next is found by the read API within 20 seconds. Only a batch the server acknowledged
  something of can change the writer (a batch refused whole never reaches the spool), so only
  then is the run sent. Waiting stops early once the writer has failed twice since the batch
  was sent: it retries the same records for ever.

After a failure the next example gets a new server on a new store (a poisoned spool is
replayed at every start): each example meets a healthy one, which is what lets
hypothesis shrink a failure to a small request.

    TRACEHOUSE_FUZZ_EXAMPLES=200 TRACEHOUSE_FUZZ_SHRINK=1 .venv/bin/python -m pytest tests/test_fuzz.py

sets the examples of each test of generated requests (default 12; the tests of hand-made JSON
and of mutated bytes run three times as many: 120 batches in all, which keeps the file to
about a minute) and shrinks failures. Shrinking is off unless asked for: each attempt sends,
waits for the writer and may break a server, so one failure takes minutes to shrink; unshrunk,
a failure shows its batch as drawn, each case with the choices that made it (and hypothesis
replays it first on the next run). ``benchmarks/fuzz.py`` is the long run.
"""

from __future__ import annotations

import collections
import os
import signal
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from serve_helpers import Server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import fuzz_requests as fuzz  # noqa: E402

EXAMPLES = int(os.environ.get("TRACEHOUSE_FUZZ_EXAMPLES", "12"))
SHRINK = os.environ.get("TRACEHOUSE_FUZZ_SHRINK", "0") == "1"
STORED_WITHIN_S = 20
WRITER_FAILURES_TO_GIVE_UP = 2
NOW = time.time_ns()  # the requests' "now": the same choices make the same bytes

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=list(Phase) if SHRINK else [phase for phase in Phase if phase is not Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
# Hand-made JSON and mutated bytes are mostly refused whole, which costs no wait for the writer.
FUZZ_REFUSED_MOSTLY = settings(FUZZ, max_examples=3 * EXAMPLES)


class HypothesisSource(fuzz.Source):
    """The generators' choices, drawn by hypothesis (which shrinks them)."""

    def __init__(self, draw) -> None:
        super().__init__(NOW)
        self.draw = draw

    def _pick(self, options):
        return self.draw(st.sampled_from(options))

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def double(self) -> float:
        return self.draw(st.floats())

    def binary(self, max_size: int) -> bytes:
        return self.draw(st.binary(max_size=max_size))

    def text(self, max_size: int) -> str:
        return self.draw(st.text(max_size=max_size))


def batches(make):
    """Lists of one to three cases, each made by ``make`` from hypothesis's choices."""

    @st.composite
    def case(draw):
        return make(HypothesisSource(draw))

    return st.lists(case(), min_size=1, max_size=3)


class FuzzedServer:
    """One `tracehouse serve` for the examples, replaced by a new one on a new store once an
    example has broken it. After the first replacement a spare one is kept started, since
    shrinking a failure breaks servers one example after another."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server: Server | None = None
        self.client: fuzz.Client | None = None
        self.output: collections.deque[str] = collections.deque(maxlen=400)
        self.broken = True
        self.started = 0
        self.starter = ThreadPoolExecutor(1)
        self.spare: Future | None = None

    def _launch(self) -> Future:
        self.started += 1
        return self.starter.submit(Server(str(self.root / f"store{self.started}"), ("--batch-interval", "0.05")).start)

    def ready(self) -> fuzz.Client:
        if self.broken:
            replacing = self.server is not None
            self._kill(self.server)
            self.server = (self.spare or self._launch()).result()
            self.spare = self._launch() if replacing else None
            self.output = collections.deque(maxlen=400)
            fuzz.tail(self.server.process.stdout, self.output)
            if self.client is not None:
                self.client.close()
            self.client = fuzz.Client(self.server.http, self.server.grpc)
            self.broken = False
        return self.client

    @staticmethod
    def _kill(server: Server | None) -> None:
        if server is not None and server.process.poll() is None:
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(30)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        self._kill(self.server)
        if self.spare is not None:
            self._kill(self.spare.result())
        self.starter.shutdown()

    def log(self) -> str:
        return "\n".join(fuzz.what_it_said(list(self.output)))

    def exchange(self, batch: list[fuzz.Case]) -> None:
        """Send a batch and check the properties (see the module's docstring)."""
        client = self.ready()
        accepted = self._accepted()
        write_errors = client.metric("tracehouse_store_write_errors_total")
        answers = []
        for case in batch:
            outcome = client.send(case)
            answers.append(outcome.code)
            if not outcome.allowed:
                self._check_alive(case)
                self.broken = True  # what it acknowledged before may be in the writer's way yet
                server_error(case, outcome, self.log())
        self._check_alive(batch[-1])
        if self._accepted() > accepted:
            self._check_storing(batch, answers, write_errors)

    def _accepted(self) -> float:
        return sum(
            self.client.metric(f'tracehouse_items_accepted_total{{signal="{name}"}}') for name in ("traces", "logs")
        )

    def _check_alive(self, case: fuzz.Case) -> None:
        if self.server.process.poll() is not None or not self.client.alive():
            self.broken = True
            server_died(case, self.server.process.poll(), self.log())

    def _check_storing(self, batch: list[fuzz.Case], answers: list[str], write_errors_before: float) -> None:
        client = self.client
        run_id = fuzz.new_run_id()

        def give_up() -> str | None:
            if self.server.process.poll() is not None:
                return "the server died"
            failures = client.metric("tracehouse_store_write_errors_total") - write_errors_before
            return f"the writer failed {failures:.0f} times" if failures >= WRITER_FAILURES_TO_GIVE_UP else None

        sent = client.send_run(run_id, deadline=STORED_WITHIN_S)
        missing = (
            [run_id] if sent.code not in ("200", "OK") else fuzz.wait_stored(client, [run_id], STORED_WITHIN_S, give_up)
        )
        if missing:
            self.broken = True
            writer_stuck(batch, answers, sent, give_up(), self.log())


def server_error(case: fuzz.Case, outcome: fuzz.Outcome, log: str) -> None:
    raise AssertionError(f"{case.channel} answered {outcome.code}: {outcome.detail}\n{case!r}\nserver log:\n{log}")


def server_died(case: fuzz.Case, returncode: int | None, log: str) -> None:
    raise AssertionError(f"the server is gone (exit code {returncode}) after {case!r}\nserver log:\n{log}")


def writer_stuck(batch: list[fuzz.Case], answers: list[str], sent: fuzz.Outcome, why: str | None, log: str) -> None:
    raise AssertionError(
        f"a valid run sent after this batch (answered {sent.code}) was not stored within {STORED_WITHIN_S} s"
        f" ({why or 'no reason given'}); the batch, answered {', '.join(answers)}: {batch!r}\nserver log:\n{log}"
    )


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    server = FuzzedServer(tmp_path_factory.mktemp("fuzz"))
    yield server
    server.stop()


@FUZZ
@given(batch=batches(lambda source: fuzz.generated_case(source, "traces", ("http/protobuf", "http/protobuf+gzip"))))
def test_trace_requests_over_http_protobuf(fuzzed, batch):
    fuzzed.exchange(batch)


@FUZZ
@given(batch=batches(lambda source: fuzz.generated_case(source, "traces", ("grpc", "grpc+gzip"))))
def test_trace_requests_over_grpc(fuzzed, batch):
    fuzzed.exchange(batch)


@FUZZ
@given(batch=batches(lambda source: fuzz.generated_case(source, "traces", fuzz.JSON_CHANNELS)))
def test_trace_requests_as_otlp_json(fuzzed, batch):
    fuzzed.exchange(batch)


@FUZZ
@given(batch=batches(lambda source: fuzz.generated_case(source, "logs", fuzz.CHANNELS)))
def test_logs_requests(fuzzed, batch):
    fuzzed.exchange(batch)


@FUZZ_REFUSED_MOSTLY
@given(batch=batches(fuzz.json_case))
def test_hand_made_json(fuzzed, batch):
    fuzzed.exchange(batch)


@FUZZ_REFUSED_MOSTLY
@given(batch=batches(fuzz.mutated_case))
def test_mutated_requests(fuzzed, batch):
    fuzzed.exchange(batch)

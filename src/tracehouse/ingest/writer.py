"""The writer: drains the spool into ClickHouse in large batches.

One thread. Each round reads up to ``batch_bytes`` of records from the committed position
(waiting up to ``interval`` seconds for them to accumulate, so a busy server inserts about once
per interval), normalizes them, inserts spans, events and logs with insert deduplication tokens
derived from the records' positions, refreshes the runs and daily rollups they touch, and only
then commits the spool past them. A failure a retry can fix (the store is down, slow, short of
memory) leaves the spool as it was; the same records are tried again with exponential backoff,
for as long as it takes: nothing acknowledged is dropped. A failure that names the data (the
engine refuses a value) splits the batch: what can be stored is, and a record that fails alone
goes to the quarantine (:mod:`quarantine`), so that no record holds up the ones after it.

Trace records are normalized inside the engine (:mod:`normalize_sql`), the embedded one or a
ClickHouse server's (one that takes a Protobuf schema from its client); only those that need the
Python normalizer go through it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from tracehouse import pricing
from tracehouse.ingest import otlp
from tracehouse.ingest.metrics import Metrics
from tracehouse.ingest.normalize import normalize_logs, normalize_spans
from tracehouse.ingest.normalize_sql import EngineCannotRead, EngineNormalizer, Result, server_reads_protobuf
from tracehouse.ingest.quarantine import Quarantine
from tracehouse.ingest.spool import KIND_LOGS, KIND_TRACES, Record, Spool
from tracehouse.model import Event, LogRecord, Node
from tracehouse.store import BatchSpans, IdleRunSweep, Store
from tracehouse.store.errors import is_data_error
from tracehouse.store.retention import Retention, RetentionPolicy

log = logging.getLogger(__name__)

# The longest a record waits for more to be stored with it (a backlog does not wait): the
# floor of the ingest-to-visible lag at a light load, and about how often each table gets an
# insert under a steady one.
DEFAULT_INTERVAL = 0.5


Listener = Callable[[Sequence[Node], Sequence[Event]], None]


def store_payloads(
    store: Store,
    payloads: Iterable[tuple[int, str, bytes]],
    retention: Callable[[str], Retention],
    *,
    dedup_token: str | None = None,
    batch: BatchSpans | None = None,
) -> tuple[list[Node], list[Event], list[LogRecord]]:
    """Decode, normalize and store OTLP export requests: ``(kind, tenant, protobuf bytes)``,
    where an empty tenant lets each span name its own (a server without API keys).

    The Python path from OTLP bytes to the store: the writer uses it for spooled requests the
    engine does not normalize, and the instrumentation's in-process mode for the spans it
    exports. ``batch`` holds the span rows the engine path stored in the same batch: their runs
    are refreshed too.
    Returns what was stored.
    """
    nodes: list[Node] = []
    events: list[Event] = []
    logs: list[LogRecord] = []
    for kind, tenant, payload in payloads:  # a payload that cannot be read raises: the writer quarantines it
        if kind == KIND_TRACES:
            request = otlp.decode(otlp.TRACES, payload, otlp.PROTOBUF)
            n, e = normalize_spans(request.resource_spans, tenant=tenant, retention_for=retention)
            nodes += n
            events += e
        elif kind == KIND_LOGS:
            request = otlp.decode(otlp.LOGS, payload, otlp.PROTOBUF)
            logs += normalize_logs(request.resource_logs, tenant=tenant, retention_for=retention)
    store.write(nodes, events, logs, dedup_token=dedup_token, batch=batch)
    return nodes, events, logs


def _undecodable(record: Record) -> otlp.BadRequest | None:
    """Why a spooled request cannot be decoded, or None."""
    try:
        otlp.decode(otlp.TRACES if record.kind == KIND_TRACES else otlp.LOGS, record.payload, otlp.PROTOBUF)
    except otlp.BadRequest as exc:
        return exc
    return None


class Writer:
    """``store`` is an open store, or a function that opens one: the writer then connects on
    its first batch and keeps trying (with backoff) while the store cannot be reached, so the
    receiver can accept into the spool during a store outage, even from a cold start."""

    def __init__(
        self,
        store: Store | Callable[[], Store],
        spool: Spool,
        retention: RetentionPolicy,
        metrics: Metrics,
        *,
        batch_bytes: int = 16 << 20,
        interval: float = DEFAULT_INTERVAL,
        max_backoff: float = 30.0,
        engine_normalize: bool | None = None,
        quarantine: Quarantine | None = None,
    ):
        self._connect = store if callable(store) else None
        self.store: Store | None = None if self._connect else store
        self.spool = spool
        self.retention = retention
        self.metrics = metrics
        self.batch_bytes = batch_bytes
        self.interval = interval
        self.max_backoff = max_backoff
        self.quarantine = quarantine or Quarantine(spool.directory)
        self.listeners: list[Listener] = []
        # Whether the listeners want the nodes of the spans the engine normalizes (building them
        # costs Python time: the live stream asks only while it has subscribers).
        self.listening: Callable[[], bool] = lambda: bool(self.listeners)
        self.engine_normalize = engine_normalize  # None: where the store's engine can
        self._engine: EngineNormalizer | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracehouse-writer", daemon=True)
        self.healthy = self.store is not None  # False while the store refuses writes or is unreachable
        self._drain_deadline = float("inf")
        self.idle_runs = IdleRunSweep()  # runs that went quiet without their root turn incomplete

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Store what the spool holds (for at most ``timeout`` seconds), then stop."""
        self._drain_deadline = time.monotonic() + timeout
        self._stop.set()
        self._thread.join(timeout + 5)

    # --- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.5
        while True:
            self.idle_runs(self.store)  # when due: every minute at most
            stopping = self._stop.is_set()
            records = self._gather(0.0 if stopping else self.interval)
            if not records:
                if stopping:
                    return
                continue
            try:
                try:
                    self.write(records)
                except Exception as exc:
                    if self.store is None or not is_data_error(exc):
                        raise
                    log.warning(
                        "the store refuses a batch of %d records for its data (%s); storing it in parts",
                        len(records),
                        str(exc)[:300],
                    )
                    self._split_off(records)  # store what can be, quarantine what cannot
                backoff = 0.5
                self.healthy = True
            except Exception as exc:  # the store is down or refused: keep the records, try again later
                self.metrics.write_errors.inc()
                if self.healthy:  # the first failure of a streak gets the whole story, the rest a line
                    log.exception("storing %d spooled records failed; retrying", len(records))
                else:
                    log.warning("storing spooled records failed again (%s); retrying in %.1fs", exc, backoff)
                self.healthy = False
                if stopping and time.monotonic() > self._drain_deadline or stopping and self.store is None:
                    # Nothing is lost: the spool keeps the records for the next start.
                    log.error(
                        "stopping with %d bytes in the spool; they are stored at the next start",
                        self.spool.pending_bytes,
                    )
                    return
                if stopping:
                    time.sleep(min(backoff, 1.0))
                else:
                    self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    def _gather(self, interval: float) -> list[Record]:
        """Records from the committed position: what is there ``interval`` seconds after the
        oldest of them was acknowledged, or as soon as ``batch_bytes`` are there. A backlog is
        taken at once: its records have waited long enough."""
        position = self.spool.committed
        records = self.spool.read(position, self.batch_bytes, timeout=interval)
        waited = (time.time_ns() - records[0].appended_ns) / 1e9 if records else 0.0
        deadline = time.monotonic() + max(0.0, interval - waited)
        size = sum(r.end - r.position for r in records)
        while size < self.batch_bytes and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            more = self.spool.read(
                records[-1].end if records else position, self.batch_bytes - size, timeout=min(remaining, 0.05)
            )
            if more:
                records.extend(more)
                size += sum(r.end - r.position for r in more)
            elif records:
                time.sleep(min(remaining, 0.05))
        return records

    # --- data the store refuses ------------------------------------------------------------------

    def _split_off(self, records: list[Record]) -> None:
        """The store refused ``records`` for their data. Requests that cannot even be decoded
        are found at once (decoding is cheap) and quarantined; the parts between them are
        stored, or split further (:meth:`_isolate`). In the spool's order, so that each commit
        only passes what is stored or quarantined."""
        start = 0
        for index, record in enumerate(records):
            problem = _undecodable(record)
            if problem is not None:
                self._store_part(records[start:index])
                self._quarantine(record, problem)
                start = index + 1
        self._store_part(records[start:])

    def _store_part(self, part: list[Record]) -> None:
        if not part:
            return
        try:
            self.write(part)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            self._isolate(part, exc)

    def _isolate(self, records: list[Record], error: Exception) -> None:
        """The store refused ``records`` for their data: store them in halves, and halves of
        the halves that fail, down to single records; a record that fails alone is quarantined.
        Each stored part is committed at once, so the work done survives a transient failure
        (which is raised, for the main loop's retry)."""
        if len(records) == 1:
            self._quarantine(records[0], error)
            return
        middle = len(records) // 2
        self._store_part(records[:middle])
        self._store_part(records[middle:])

    def _quarantine(self, record: Record, error: Exception) -> None:
        self.store.query("SELECT 1")  # the store answers, so the record itself is refused (raises if not)
        entry = self.quarantine.add(record, f"{type(error).__name__}: {error}")
        self.spool.commit(record.end, 1)
        self.metrics.quarantined.labels("traces" if record.kind == KIND_TRACES else "logs").inc()
        log.error(
            "the store refuses a spooled %s request of tenant %r (%d bytes); it is quarantined as %s "
            "(tracehouse quarantine list / retry / drop): %s",
            entry.signal,
            record.tenant,
            len(record.payload),
            entry.id,
            str(error)[:500],
        )

    # --- one batch -----------------------------------------------------------------------------

    def _store_in_engine(self, payloads: list[tuple[int, str, bytes]], token: str) -> Result | None:
        """Store the trace payloads the engine normalizes (None: the engine normalizes none);
        the result names the payloads left for Python."""
        engine = self._engine_for(self.store)
        traces = [i for i, (kind, _, _) in enumerate(payloads) if kind == KIND_TRACES]
        if engine is None or not traces:
            return None
        default, tenants = self.retention.table()
        try:
            result = engine.store_traces(
                [payloads[i][1:] for i in traces], default, tenants, dedup_token=token, live=self.listening()
            )
        except EngineCannotRead as exc:
            log.warning("the engine cannot read this batch (%s); normalizing it in Python", str(exc)[:300])
            self.metrics.engine_fallbacks.inc()
            return None
        except OSError as exc:  # the batch file cannot be written (a full disk): Python needs none
            log.warning("the engine's batch file cannot be written (%s); normalizing in Python", exc)
            self.metrics.engine_fallbacks.inc()
            return None
        result.python_records = {traces[i] for i in result.python_records}
        return result

    def _engine_for(self, store: Store) -> EngineNormalizer | None:
        use = self.engine_normalize
        if use is None:
            use = store.address.embedded or server_reads_protobuf(store.client)
        if use and self._engine is None:
            self._engine = EngineNormalizer(store, pricing.cost_usd, self.spool.directory)
        return self._engine if use else None

    def write(self, records: list[Record]) -> None:
        started = time.monotonic()
        if self.store is None:
            self.store = self._connect()  # raises while the store is unreachable: retried
            self.retention.store = self.store
            log.info("connected to the store %s", self.store.address.describe())
        token = f"spool:{records[0].position}-{records[-1].end}"
        payloads = [(r.kind, r.tenant, r.payload) for r in records]
        stored = self._store_in_engine(payloads, token)
        if stored is None:
            nodes, events, logs = store_payloads(self.store, payloads, self.retention.for_tenant, dedup_token=token)
            spans = len(nodes)
        else:
            try:
                left = [p for i, p in enumerate(payloads) if p[0] != KIND_TRACES or i in stored.python_records]
                nodes, events, logs = store_payloads(
                    self.store, left, self.retention.for_tenant, dedup_token=token, batch=stored.batch
                )
            finally:
                self._engine.release()
            spans = stored.spans + len(nodes)
            nodes = stored.live + nodes
        self.spool.commit(records[-1].end, len(records))
        self.metrics.stored.labels("traces").inc(spans)
        self.metrics.stored.labels("logs").inc(len(logs))
        now_ns = time.time_ns()
        self.metrics.batch_rows.observe(spans)
        self.metrics.insert_seconds.observe(time.monotonic() - started)
        for record in records:
            self.metrics.lag_seconds.observe(max(0.0, (now_ns - record.appended_ns) / 1e9))
        for listener in self.listeners:
            try:
                listener(nodes, events)
            except Exception:
                log.exception("a batch listener failed")

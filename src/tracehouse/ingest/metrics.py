"""The receiver's own metrics, exposed in the Prometheus text format at ``/metrics``."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_SIZES = (1, 10, 100, 1_000, 5_000, 10_000, 50_000, 100_000)
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Finer around the 2 s a span should take to become visible under a steady load.
_LAG_SECONDS = (0.25, 0.5, 1, 1.5, 2, 2.5, 3, 5, 10, 30, 60, 300)


class Metrics:
    """One registry per server, so servers in one process do not share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "tracehouse_items_received", "Spans and log records received", ["signal", "transport"], registry=r
        )
        self.accepted = Counter(
            "tracehouse_items_accepted", "Spans and log records acknowledged (durable)", ["signal"], registry=r
        )
        self.stored = Counter(
            "tracehouse_items_stored", "Spans and log records the writer stored (committed)", ["signal"], registry=r
        )
        for signal in ("traces", "logs"):  # at 0 from the start, to compare with the acknowledged
            self.stored.labels(signal)
        self.rejected = Counter(
            "tracehouse_items_rejected", "Spans and log records refused, by reason", ["signal", "reason"], registry=r
        )
        self.limited = Counter(
            "tracehouse_items_limited",
            "Spans and log records kept with attributes dropped or values truncated, by limit",
            ["signal", "limit"],
            registry=r,
        )
        self.requests = Counter(
            "tracehouse_requests", "Export requests by transport and outcome", ["transport", "outcome"], registry=r
        )
        self.batch_rows = Histogram(
            "tracehouse_insert_batch_rows", "Spans per insert batch", buckets=_SIZES, registry=r
        )
        self.insert_seconds = Histogram(
            "tracehouse_insert_seconds", "Time to store one batch (insert and refresh)", buckets=_SECONDS, registry=r
        )
        self.lag_seconds = Histogram(
            "tracehouse_ingest_lag_seconds",
            "From acknowledgement to visible in the store",
            buckets=_LAG_SECONDS,
            registry=r,
        )
        self.write_errors = Counter("tracehouse_store_write_errors", "Failed attempts to store a batch", registry=r)
        self.quarantined = Counter(
            "tracehouse_records_quarantined",
            "Spooled requests the store refused for their data, moved to the quarantine",
            ["signal"],
            registry=r,
        )
        self.quarantine_records = Gauge(
            "tracehouse_quarantine_records", "Requests in the quarantine, waiting for an operator", registry=r
        )
        self.quarantine_bytes = Gauge(
            "tracehouse_quarantine_bytes", "Bytes of the requests in the quarantine", registry=r
        )
        self.engine_fallbacks = Counter(
            "tracehouse_engine_fallback_batches",
            "Batches the embedded engine could not read, normalized in Python instead",
            registry=r,
        )
        self.spool_bytes = Gauge("tracehouse_spool_pending_bytes", "Bytes acknowledged but not yet stored", registry=r)
        self.spool_records = Gauge(
            "tracehouse_spool_pending_records", "Records acknowledged but not yet stored", registry=r
        )
        self.spool_max_bytes = Gauge(
            "tracehouse_spool_max_bytes", "Pending bytes at which clients are told to retry later", registry=r
        )
        self.writer_healthy = Gauge(
            "tracehouse_writer_healthy",
            "1 while the writer stores, 0 while the store refuses or is unreachable",
            registry=r,
        )

    def watch_spool(
        self, pending_bytes: Callable[[], float], pending_records: Callable[[], float], max_bytes: int
    ) -> None:
        self.spool_bytes.set_function(pending_bytes)
        self.spool_records.set_function(pending_records)
        self.spool_max_bytes.set(max_bytes)

    def watch_writer(self, healthy: Callable[[], bool]) -> None:
        self.writer_healthy.set_function(lambda: float(healthy()))

    def watch_quarantine(self, stats: Callable[[], tuple[int, int]]) -> None:
        self.quarantine_records.set_function(lambda: stats()[0])
        self.quarantine_bytes.set_function(lambda: stats()[1])

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""The ClickHouse store: open it by DSN, write canonical rows, keep run summaries current.

>>> store = Store.open("chdb://./tracehouse-data")   # the embedded default
>>> store.write(nodes, events)                       # insert, then refresh the runs touched
>>> store.close()

The same DDL and SQL run on the embedded engine and on a ClickHouse server or cluster. One
tenant's reads, answered with the API's response models, are the read service's
(:class:`tracehouse.store.reads.ReadService`, over :mod:`tracehouse.store.queries`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from tracehouse.model import DEFAULT_RUN_IDLE_TIMEOUT, Event, LogRecord, Node
from tracehouse.store import migrations, rollups, rows, schema
from tracehouse.store.client import StoreBusyError, StoreError, connect
from tracehouse.store.dsn import DEFAULT_DSN, DSNError, StoreAddress, parse_dsn
from tracehouse.store.rollups import BatchSpans, IdleRun, IdleRunSweep, IdleSweep
from tracehouse.store.schema import Layout

__all__ = [
    "BatchSpans",
    "DEFAULT_DSN",
    "DSNError",
    "IdleRun",
    "IdleRunSweep",
    "IdleSweep",
    "Layout",
    "Store",
    "StoreAddress",
    "StoreBusyError",
    "StoreError",
    "parse_dsn",
]


def runs_seen(nodes: Iterable[Node]) -> dict[tuple[str, str], datetime]:
    """The runs a batch of spans touches, each with the earliest start among its spans."""
    seen: dict[tuple[str, str], datetime] = {}
    for node in nodes:
        if node.run_id:
            key = (node.tenant, node.run_id)
            if key not in seen or node.started_at < seen[key]:
                seen[key] = node.started_at
    return seen


class Store:
    """An open store: a client, where the tables are, and the writes tracehouse makes.

    ``run_idle_timeout``: seconds after which a run without its root span and without a new
    span is ``incomplete`` (:mod:`tracehouse.store.rollups`)."""

    def __init__(
        self,
        client: Any,
        address: StoreAddress,
        layout: Layout,
        *,
        run_idle_timeout: float = DEFAULT_RUN_IDLE_TIMEOUT,
    ):
        self.client = client
        self.address = address
        self.layout = layout
        self.run_idle_timeout = run_idle_timeout

    @classmethod
    def open(
        cls,
        dsn: str = DEFAULT_DSN,
        *,
        cluster: str | None = None,
        migrate: bool = True,
        run_idle_timeout: float = DEFAULT_RUN_IDLE_TIMEOUT,
    ) -> Store:
        """Connect to the store named by ``dsn`` and bring its schema to the latest version."""
        address = parse_dsn(dsn)
        if cluster and address.embedded:
            raise DSNError("--cluster needs a ClickHouse server DSN (http:// or https://), not chdb://")
        layout = Layout(database=address.database, cluster=cluster)
        client = connect(address)
        store = cls(client, address, layout, run_idle_timeout=run_idle_timeout)
        if migrate:
            try:
                migrations.migrate(client, layout)
            except Exception:
                store.close()
                raise
        return store

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reads ---------------------------------------------------------------------------------

    def table(self, name: str) -> str:
        return self.layout.table(name)

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple]:
        """Run a SELECT with server-side bound ``{name:Type}`` parameters; return the rows."""
        return self.client.query(sql, parameters=parameters or {}).result_rows

    def schema_version(self) -> int:
        return max(migrations.applied_versions(self.client, self.layout), default=0)

    # --- writes --------------------------------------------------------------------------------

    def _insert(self, table: str, columns: Sequence[str], data: list[list], dedup_token: str | None) -> int:
        if not data:
            return 0
        settings = {"insert_deduplication_token": dedup_token} if dedup_token else None
        self.client.insert(self.layout.table(table), data, column_names=list(columns), settings=settings)
        return len(data)

    def insert_from(self, table: str, columns: Sequence[str], select: str, *, dedup_token: str | None = None) -> None:
        """``INSERT INTO table (columns) select``: rows the engine computes from its own tables
        (the engine normalizer's temporary tables of a batch, in this store's session)."""
        settings = {"insert_deduplication_token": dedup_token} if dedup_token else None
        names = ", ".join(f"`{c}`" for c in columns)
        self.client.command(f"INSERT INTO {self.layout.table(table)} ({names}) {select}", settings=settings)

    def insert_spans(self, nodes: Iterable[Node], *, dedup_token: str | None = None) -> int:
        """Insert spans as they are; call :meth:`refresh_runs` for their runs afterwards."""
        return self._insert(schema.SPANS, rows.SPAN_COLUMNS, [rows.span_row(n) for n in nodes], dedup_token)

    def insert_events(self, events: Iterable[Event], *, dedup_token: str | None = None) -> int:
        return self._insert(schema.EVENTS, rows.EVENT_COLUMNS, [rows.event_row(e) for e in events], dedup_token)

    def insert_logs(self, records: Iterable[LogRecord], *, dedup_token: str | None = None) -> int:
        return self._insert(schema.LOGS, rows.LOG_COLUMNS, [rows.log_row(r) for r in records], dedup_token)

    def refresh_runs(
        self, seen: Mapping[tuple[str, str], datetime], batch: BatchSpans | None = None
    ) -> set[tuple[str, datetime]]:
        """Recompute runs that received spans: ``(tenant, run_id)`` -> earliest start just written
        (new runs of ``batch`` from that table: :func:`rollups.refresh_runs`). Returns the
        ``(tenant, minute)`` slices of the daily rollup they were or are listed under."""
        return rollups.refresh_runs(self.client, self.layout, seen, batch, idle_seconds=self.run_idle_timeout)

    def refresh_agent_daily(self, minutes: Iterable[tuple[str, datetime]]) -> None:
        """Recompute the daily rollup's ``(tenant, minute)`` slices from the runs."""
        rollups.refresh_agent_daily(self.client, self.layout, minutes)

    def mark_idle_runs(self, after: datetime | None = None) -> list[IdleRun]:
        """Turn the runs that went quiet without their root span ``incomplete`` (those whose
        latest span ended after ``after``; None: all), and return them: the writer's sweep
        (:func:`rollups.mark_idle_runs`) all at once."""
        turned: list[IdleRun] = []
        while True:
            sweep = rollups.mark_idle_runs(self.client, self.layout, self.run_idle_timeout, after=after)
            turned += sweep.runs
            if sweep.complete:
                return turned

    def write(
        self,
        nodes: Sequence[Node],
        events: Sequence[Event] = (),
        logs: Sequence[LogRecord] = (),
        *,
        dedup_token: str | None = None,
        batch: BatchSpans | None = None,
    ) -> None:
        """Insert a batch and bring the run rows and daily rollups it touches up to date (and
        those of the runs whose spans ``batch`` holds, already inserted)."""
        token = (lambda kind: f"{dedup_token}:{kind}") if dedup_token else (lambda kind: None)
        self.insert_spans(nodes, dedup_token=token("spans"))
        self.insert_events(events, dedup_token=token("events"))
        self.insert_logs(logs, dedup_token=token("logs"))
        seen = runs_seen(nodes)
        if batch is not None:  # a run with spans among ``nodes`` too is not all in the batch table
            whole = {key: started for key, started in batch.runs.items() if key not in seen}
            for key, started in batch.runs.items():
                seen[key] = min(started, seen.get(key, started))
            batch = BatchSpans(batch.table, whole)
        if seen:
            self.refresh_agent_daily(self.refresh_runs(seen, batch))

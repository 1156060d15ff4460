"""OTLP trace payloads normalized inside the ClickHouse engine: the writer's fast path, and
the batch runner of it.

The Python normalizer (:mod:`tracehouse.ingest.normalize`) reads every convention; it costs
about 150 microseconds of Python per span. The engine does the same work as SQL, in C++, with
the Python interpreter free for the receiver meanwhile (the engine releases the GIL). Split by
concern:

- :mod:`tracehouse.ingest.engine_input`: what the engine reads a batch as (the framed
  protobuf, its schema and structure) and the statement that stages it into a temporary table
  of spans, flagging the records only the Python normalizer reads right;
- :mod:`tracehouse.ingest.engine_statements`: the statement that computes the canonical columns
  of the other records (the conventions' rules compiled by :mod:`tracehouse.ingest.engine_rules`),
  and the selects of span rows and replay events from it;
- :mod:`tracehouse.ingest.sql_text`: the one place that writes literals (the normalizer's own
  constants; a span's values are data or bound parameters);
- this module: one batch, in one session of the store. An embedded engine reads the batch from a
  file (with the schema written beside it); a ClickHouse server gets it as the data of an
  ``INSERT ... FORMAT Protobuf`` into a temporary table of its session, with the schema as a
  string (``format_schema_source``). The rows are inserted through the store
  (:meth:`Store.insert_from`). A record with a flagged span goes to the Python normalizer, whole.

tests/test_normalize_sql.py feeds every convention fixture of the normalizer's tests through both
paths and compares the stored rows. Token costs come from the same pricer, asked for each model's
price per token. JSON values inside messages (a tool call's arguments) are stored as the engine
reads them, which may differ from Python's spacing; the values are the same. A server older than
``format_schema_source`` (:func:`server_reads_protobuf`) cannot take a schema from its client:
there the writer normalizes in Python.
"""

from __future__ import annotations

import glob
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.exceptions import OperationalError

from tracehouse import conventions
from tracehouse.ingest import normalize as py
from tracehouse.ingest.engine_input import (
    SCHEMA,
    SERVER_PROTOBUF_SETTINGS,
    STAGE,
    STRUCTURE,
    file_source,
    frame,
    server_reads_protobuf,
    stage_statement,
)
from tracehouse.ingest.engine_rules import compile_rule
from tracehouse.ingest.engine_statements import (
    NORMALIZED,
    Prices,
    events_select,
    normalize_statement,
    spans_select,
    tenant_days,
)
from tracehouse.model import Node, NodeType, Status, Usage
from tracehouse.store import rows, schema
from tracehouse.store.rollups import BatchSpans

__all__ = ["EngineCannotRead", "EngineNormalizer", "Result", "frame", "server_reads_protobuf"]

_BATCH_PREFIX = "tracehouse-batch-"
STALE_BATCH_SECONDS = 3600
RAW = "tracehouse_ingest_raw"  # a session-scoped temporary table: a server's batch as sent


def _token(dedup_token: str | None, table: str) -> str | None:
    """The deduplication token of one table's insert of a batch (a retried batch is the same)."""
    return f"{dedup_token}:sql-{table}" if dedup_token else None


class EngineCannotRead(Exception):
    """The engine could not parse the batch (valid protobuf it does not read, such as unknown
    fields of the deprecated group type): the batch is for the Python normalizer."""


@dataclass
class Result:
    """What the engine stored, and what it left to the Python normalizer."""

    spans: int
    python_records: set[int]  # indexes of the payloads to normalize in Python
    live: list[Node]  # light nodes for batch listeners, when asked for
    # The span rows stored and the runs touched (each with its earliest start), for the run
    # refresh, until :meth:`EngineNormalizer.release`.
    batch: BatchSpans


class EngineNormalizer:
    """Runs the statements above for one store: an embedded one reads each batch from a file,
    a ClickHouse server from the data of an insert in the store's session."""

    def __init__(self, store: Any, price: py.Pricer, directory: str | None = None):
        self.store = store
        self.price = price
        self.server = not store.address.embedded
        self.directory = directory or tempfile.gettempdir()
        self._events = events_select()
        self._spans = spans_select()
        if self.server:
            return
        # Batch files left by a crash; another writer's (another receiver on this machine, whose
        # batch lives for seconds) are younger than STALE_BATCH_SECONDS and are left alone.
        for stale in glob.glob(os.path.join(self.directory, _BATCH_PREFIX + "*")):
            try:
                if time.time() - os.path.getmtime(stale) > STALE_BATCH_SECONDS:
                    os.unlink(stale)
            except FileNotFoundError:  # its writer removed it meanwhile
                pass
        # The schema as a file beside the batches (an inline schema would be cached by the engine
        # in the working directory).
        self.schema_path = os.path.abspath(os.path.join(self.directory, "tracehouse-otlp.proto"))
        with open(self.schema_path, "w") as f:
            f.write(SCHEMA)

    def _command(
        self, sql: str, settings: dict[str, Any] | None = None, parameters: dict[str, Any] | None = None
    ) -> None:
        self.store.client.command(sql, parameters=parameters, settings=settings)

    def store_traces(
        self,
        payloads: Sequence[tuple[str, bytes]],
        retention: py.Retention,
        tenants: Mapping[str, py.Retention],
        *,
        dedup_token: str | None = None,
        live: bool = False,
    ) -> Result:
        """Normalize and insert ``(tenant, export request bytes)`` payloads; those the engine
        leaves to Python are named in the result, nothing of them is stored. The stored span
        rows stay in a temporary table (``Result.batch``) for the run refresh: call
        :meth:`release` after it. Raises :class:`EngineCannotRead`, having stored nothing, when
        the engine cannot parse them."""
        if self.server:
            self._stage_on_server(payloads)
        else:
            self._stage_from_file(payloads)
        try:
            python_records = {r for (r,) in self.store.query(f"SELECT DISTINCT record FROM {STAGE} WHERE python_only")}
            # A record is normalized by one path, whole.
            engine_rows = f"record NOT IN ({', '.join(map(str, sorted(python_records)))})" if python_records else "1"
            models = [m for (m,) in self.store.query(self._models_sql(engine_rows))]
            prices = Prices.ask(models, self.price)
            self._command(
                normalize_statement(retention, tenants, prices, engine_rows),
                parameters={**prices.parameters(), **tenant_days(tenants)},
            )
            self._command(f"DROP TEMPORARY TABLE {STAGE}")  # its memory is free for the inserts
            inserts = (
                ("spans", schema.SPANS, rows.SPAN_COLUMNS, self._spans),
                ("events", schema.EVENTS, rows.EVENT_COLUMNS, self._events),
            )
            for kind, table, columns, select in inserts:
                self.store.insert_from(table, columns, select, dedup_token=_token(dedup_token, kind))
            runs = {
                (tenant, run_id): rows.from_ns(rows.ns(started))  # aware UTC, as the Python path's
                for tenant, run_id, started in self.store.query(
                    f"SELECT Tenant, RunId, min(Timestamp) FROM {NORMALIZED} WHERE RunId != '' GROUP BY Tenant, RunId"
                )
            }
            spans = self.store.query(f"SELECT count() FROM {NORMALIZED}")[0][0]
            return Result(spans, python_records, self._live() if live else [], BatchSpans(NORMALIZED, runs))
        except BaseException:
            self.release()
            raise

    def _stage_from_file(self, payloads: Sequence[tuple[str, bytes]]) -> None:
        fd, path = tempfile.mkstemp(prefix=_BATCH_PREFIX, suffix=".bin", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                for index, (tenant, payload) in enumerate(payloads):
                    f.write(frame(payload, tenant, index))
            self.release()
            try:
                self._command(stage_statement(*file_source(path, self.schema_path)))
            except Exception as exc:
                raise EngineCannotRead(str(exc)) from exc
        finally:
            os.unlink(path)

    def _stage_on_server(self, payloads: Sequence[tuple[str, bytes]]) -> None:
        """The batch as the data of an insert into a temporary table of the session (the server
        cannot read the client's files), then the same staging statement over that table."""
        data = b"".join(frame(payload, tenant, index) for index, (tenant, payload) in enumerate(payloads))
        self.release()
        self._command(f"CREATE TEMPORARY TABLE {RAW} ({STRUCTURE}) ENGINE = Memory")
        try:
            self.store.client.raw_insert(RAW, insert_block=data, fmt="Protobuf", settings=SERVER_PROTOBUF_SETTINGS)
            self._command(stage_statement(RAW, ""))
        except OperationalError:
            raise  # the server is unreachable or timed out: the writer retries the batch
        except Exception as exc:
            raise EngineCannotRead(str(exc)) from exc
        self._command(f"DROP TEMPORARY TABLE {RAW}")

    def _models_sql(self, engine_rows: str) -> str:
        return f"SELECT DISTINCT {compile_rule(conventions.MODEL)} AS model FROM {STAGE} WHERE {engine_rows} AND model != ''"  # noqa: E501

    def _live(self) -> list[Node]:
        columns = (
            "Tenant, RunId, RunRoot, AgentName, Timestamp, SpanId, SpanName, NodeType, Status, Duration, Model, "
            "InputTokens, OutputTokens, CostUsd, StatusMessage"
        )
        nodes = []
        for row in self.store.query(f"SELECT {columns} FROM {NORMALIZED}"):
            tenant, run_id, root, agent, started, span_id, name, kind, status, duration, model, it, ot, cost, msg = row
            nodes.append(
                Node.model_construct(
                    tenant=tenant,
                    run_id=run_id,
                    run_root=bool(root),
                    agent_name=agent,
                    started_at=rows.from_ns(rows.ns(started)),
                    span_id=span_id,
                    name=name,
                    type=NodeType(kind),
                    status=Status(status),
                    duration_ns=duration,
                    model=model,
                    usage=Usage.model_construct(input_tokens=it, output_tokens=ot),
                    cost_usd=cost,
                    status_message=msg,
                )
            )
        return nodes

    def release(self) -> None:
        """Drop the batch's tables: after the runs it touched are refreshed (``Result.batch``)."""
        for table in (RAW, STAGE, NORMALIZED) if self.server else (STAGE, NORMALIZED):
            self._command(f"DROP TEMPORARY TABLE IF EXISTS {table}")

"""Versioned schema changes, applied in order at startup, each once.

A migration is a version number, a description and the statements it runs for a
:class:`~tracehouse.store.schema.Layout`. Applied versions are recorded in
``schema_migrations``. Statements are idempotent (``IF NOT EXISTS``; copies of rows into a
ReplacingMergeTree collapse with the rows already there), so a run that stopped
half-way is completed by the next start. New schema changes append a migration; released
migrations are never edited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from string import Template
from typing import Any

from tracehouse.store import rollups, schema
from tracehouse.store.schema import Layout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: Callable[[Layout], list[str]]


def _initial(layout: Layout) -> list[str]:
    statements: list[str] = []
    for spec in (
        schema.SPANS_TABLE,
        schema.TRACE_ID_TS_TABLE,
        schema.RUNS_TABLE,
        schema.EVENTS_TABLE,
        schema.LOGS_TABLE,
        schema.AGENT_DAILY_TABLE,
        schema.TENANTS_TABLE,
    ):
        statements += layout.create_table(spec)
    statements += layout.create_view(schema.TRACE_ID_TS_VIEW)
    return statements


def _collector_defaults(layout: Layout) -> list[str]:
    statements: list[str] = []
    for table, defaults in schema.COLLECTOR_DEFAULTS.items():
        statements += layout.set_defaults(table, defaults)
    return statements


def _runs_by_id(layout: Layout) -> list[str]:
    # The view first, then the copy of the rows already there: a run written in between is
    # copied twice, and the two copies collapse (same key and version).
    return [
        *layout.create_table(schema.RUNS_BY_ID_TABLE),
        *layout.create_view(schema.RUNS_BY_ID_VIEW),
        f"INSERT INTO {layout.table(schema.RUNS_BY_ID)} SELECT * FROM {layout.table(schema.RUNS)}",
    ]


def _daily_by_minute(layout: Layout) -> list[str]:
    # The rollup is derived data: rebuilt in its new shape from the runs. A refresh that runs
    # between the drop and the fill is redone by the fill (same keys, newer version).
    rebuild = Template(rollups.REBUILD_DAILY).substitute(
        daily=layout.table(schema.AGENT_DAILY), runs=layout.table(schema.RUNS)
    )
    return [*layout.drop_table(schema.AGENT_DAILY), *layout.create_table(schema.AGENT_DAILY_TABLE), rebuild]


def _incomplete_runs(layout: Layout) -> list[str]:
    # Runs already stored keep their status until the writer's first sweep, which finds the
    # quiet ones among them and recomputes them, with the rollup minutes they are listed under.
    return [
        *layout.add_columns(schema.AGENT_DAILY, {"Incomplete": "UInt64 AFTER Running"}),
        *layout.add_indexes(schema.RUNS, schema.RUNS_ENDED_INDEX),
    ]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "spans, trace id lookup, runs, events, logs, agent daily rollup, tenants", _initial),
    Migration(2, "defaults for spans and logs the Collector's ClickHouse exporter writes", _collector_defaults),
    Migration(3, "runs sorted by id, for finding one run", _runs_by_id),
    Migration(4, "agent daily rollup in minute slices, so a refresh reads a few minutes of runs", _daily_by_minute),
    Migration(5, "incomplete runs: counted in the daily rollup, found by their latest span's end", _incomplete_runs),
)
LATEST_VERSION = MIGRATIONS[-1].version


def bootstrap_statements(layout: Layout) -> list[str]:
    """The database and the migrations table: what must exist before versions can be read."""
    return [layout.create_database(), *layout.create_table(schema.MIGRATIONS_TABLE)]


def all_statements(layout: Layout) -> list[str]:
    """Every statement of the schema in order: what ``tracehouse schema`` prints."""
    statements = bootstrap_statements(layout)
    for migration in MIGRATIONS:
        statements += migration.statements(layout)
    return statements


def applied_versions(client: Any, layout: Layout) -> set[int]:
    rows = client.query(f"SELECT Version FROM {layout.table(schema.MIGRATIONS)} FINAL").result_rows
    return {int(version) for (version,) in rows}


def migrate(client: Any, layout: Layout) -> list[int]:
    """Bring the schema to the latest version; return the versions applied now."""
    for statement in bootstrap_statements(layout):
        client.command(statement)
    done = applied_versions(client, layout)
    unknown = sorted(v for v in done if v > LATEST_VERSION)
    if unknown:
        raise RuntimeError(
            f"the store was migrated by a newer tracehouse (schema version {unknown[-1]}, "
            f"this build knows up to {LATEST_VERSION}); upgrade tracehouse to open it"
        )
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        log.info("applying schema migration %d: %s", migration.version, migration.description)
        for statement in migration.statements(layout):
            client.command(statement)
        client.insert(
            layout.table(schema.MIGRATIONS),
            [[migration.version, migration.description]],
            column_names=["Version", "Description"],
        )
        applied.append(migration.version)
    return applied

"""Deletion and retention: forget a run or a user on request, set a tenant's retention, read
the retention new rows get (:class:`RetentionPolicy`, for the writer), and apply retention now
with a report of what went.

Deletions are ClickHouse lightweight deletes (``DELETE FROM``: rows are hidden at once and
dropped by the next merges) on every table that holds the data, always within one tenant. The
daily rollups of the days touched are recomputed afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tracehouse.model import DEFAULT_TTL_DAYS, MAX_TTL_DAYS
from tracehouse.store import schema

if TYPE_CHECKING:
    from tracehouse.store import Store

# Tables that hold a run's rows, by the column naming the run.
_RUN_TABLES = (schema.SPANS, schema.EVENTS, schema.LOGS, schema.RUNS, schema.RUNS_BY_ID)


@dataclass
class Removed:
    """Rows removed, by table."""

    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def _count(store: Any, table: str, where: str, params: dict) -> int:
    return store.query(f"SELECT count() FROM {store.table(table)} FINAL WHERE {where}", params)[0][0]


def _delete_runs(store: Any, tenant: str, run_ids: list[str]) -> Removed:
    removed = Removed()
    if not run_ids:
        return removed
    params = {"tenant": tenant, "runs": run_ids}
    minutes = store.query(
        f"SELECT DISTINCT Tenant, toStartOfMinute(StartedAt) FROM {store.table(schema.RUNS)} "
        "WHERE Tenant = {tenant:String} AND RunId IN {runs:Array(String)}",
        params,
    )
    where = "Tenant = {tenant:String} AND RunId IN {runs:Array(String)}"
    for table in _RUN_TABLES:
        removed.rows[table] = _count(store, table, where, params)
        store.client.command(
            f"DELETE FROM {store.layout.local(table)}{store.layout.on_cluster} WHERE {where}", parameters=params
        )
    store.refresh_agent_daily(minutes)
    return removed


def _with_sub_runs(store: Any, tenant: str, run_ids: list[str]) -> list[str]:
    """The runs and, recursively, the sub-agent runs they started."""
    found, frontier = set(run_ids), list(run_ids)
    while frontier:
        children = store.query(
            f"SELECT DISTINCT RunId FROM {store.table(schema.RUNS)} FINAL "
            "WHERE Tenant = {tenant:String} AND ParentRunId IN {parents:Array(String)}",
            {"tenant": tenant, "parents": frontier},
        )
        frontier = [run_id for (run_id,) in children if run_id not in found]
        found.update(frontier)
    return sorted(found)


def delete_run(store: Any, tenant: str, run_id: str) -> Removed:
    """Forget one run and its sub-agent runs: spans, events, logs and the run rows."""
    return _delete_runs(store, tenant, _with_sub_runs(store, tenant, [run_id]))


def delete_user(store: Any, tenant: str, user_id: str) -> Removed:
    """Forget everything of one user (the right to be forgotten): every run the user started,
    with its sub-agent runs, and any other span that names the user."""
    runs = store.query(
        f"SELECT DISTINCT RunId FROM {store.table(schema.RUNS)} FINAL "
        "WHERE Tenant = {tenant:String} AND UserId = {user:String}",
        {"tenant": tenant, "user": user_id},
    )
    removed = _delete_runs(store, tenant, _with_sub_runs(store, tenant, [r for (r,) in runs]))
    where = "Tenant = {tenant:String} AND UserId = {user:String}"
    params = {"tenant": tenant, "user": user_id}
    stray = _count(store, schema.SPANS, where, params)
    if stray:
        store.client.command(
            f"DELETE FROM {store.layout.local(schema.SPANS)}{store.layout.on_cluster} WHERE {where}", parameters=params
        )
        removed.rows[schema.SPANS] = removed.rows.get(schema.SPANS, 0) + stray
    return removed


@dataclass(frozen=True)
class TenantRetention:
    tenant: str
    retention_days: int | None  # None: the server's default
    payload_retention_days: int | None


def get_retention(store: Any, tenant: str) -> TenantRetention:
    rows = store.query(
        f"SELECT RetentionDays, PayloadRetentionDays FROM {store.table(schema.TENANTS)} FINAL "
        "WHERE Tenant = {tenant:String}",
        {"tenant": tenant},
    )
    return TenantRetention(tenant, rows[0][0], rows[0][1]) if rows else TenantRetention(tenant, None, None)


def set_retention(store: Any, tenant: str, days: int, payload_days: int | None = None) -> TenantRetention:
    """How long new rows of a tenant are kept (rows already stored keep theirs: a row's
    retention is part of its partition)."""
    payload_days = days if payload_days is None else payload_days
    if not 1 <= days <= MAX_TTL_DAYS or not 1 <= payload_days <= days:
        raise ValueError(f"retention must be 1 to {MAX_TTL_DAYS} days, payload retention 1 to the retention")
    store.client.insert(
        store.table(schema.TENANTS),
        [[tenant, days, payload_days]],
        column_names=["Tenant", "RetentionDays", "PayloadRetentionDays"],
    )
    return TenantRetention(tenant, days, payload_days)


@dataclass(frozen=True)
class Retention:
    """Where a row's retention comes from when the span does not say."""

    ttl_days: int = DEFAULT_TTL_DAYS
    payload_ttl_days: int = DEFAULT_TTL_DAYS


class RetentionPolicy:
    """The retention of a tenant's rows: its settings in the ``tenants`` table, else the
    server's defaults. Settings are re-read at most every ``refresh`` seconds."""

    def __init__(self, store: Store | None, default_days: int, payload_days: int | None = None, refresh: float = 30.0):
        self.store = store  # None until the store can be reached: the defaults apply
        self.default = Retention(default_days, min(payload_days or default_days, default_days))
        self.refresh = refresh
        self._tenants: dict[str, Retention] = {}
        self._loaded = -float("inf")

    def for_tenant(self, tenant: str) -> Retention:
        self._reload()
        return self._tenants.get(tenant, self.default)

    def table(self) -> tuple[Retention, dict[str, Retention]]:
        """The default retention and every tenant's own."""
        self._reload()
        return self.default, dict(self._tenants)

    def _reload(self) -> None:
        if self.store is not None and time.monotonic() - self._loaded > self.refresh:
            rows = self.store.query(
                f"SELECT Tenant, RetentionDays, PayloadRetentionDays FROM {self.store.table(schema.TENANTS)} FINAL"
            )
            self._tenants = {t: Retention(days, min(payload or days, days)) for t, days, payload in rows}
            self._loaded = time.monotonic()


_TTL_TABLES = (
    schema.SPANS,
    schema.EVENTS,
    schema.LOGS,
    schema.RUNS,
    schema.RUNS_BY_ID,
    schema.AGENT_DAILY,
    schema.TRACE_ID_TS,
)


def cleanup(store: Any) -> Removed:
    """Apply retention now instead of at the next merges; report the rows that went.

    Retention is the engine's (TTL): this only makes it happen at once. Counts cover every
    tenant, as parts hold rows of several.
    """
    removed = Removed()
    for table in _TTL_TABLES:
        before = store.query(f"SELECT count() FROM {store.table(table)} FINAL")[0][0]
        store.client.command(
            f"ALTER TABLE {store.layout.local(table)}{store.layout.on_cluster} MATERIALIZE TTL",
            settings={"mutations_sync": 2},
        )
        after = store.query(f"SELECT count() FROM {store.table(table)} FINAL")[0][0]
        removed.rows[table] = max(0, before - after)
    return removed

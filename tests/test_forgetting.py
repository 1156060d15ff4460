"""Deleting runs and users, per-tenant retention, and cleanup: within one tenant, reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracehouse.demo import sample_run
from tracehouse.store import queries, retention, schema

pytestmark = pytest.mark.both_stores  # and against a ClickHouse HTTP endpoint (conftest)


def _runs(store, tenant: str = "default") -> set[str]:
    return {r.run_id for r in queries.list_runs(store, tenant, limit=1000)}


def _rows(store, table: str, where: str, **params) -> int:
    return store.query(f"SELECT count() FROM {store.table(table)} FINAL WHERE {where}", params)[0][0]


def test_deleting_a_run_takes_its_sub_runs_and_everything_they_stored(store):
    doomed, kept = sample_run(51, user_id="u-1"), sample_run(52, user_id="u-1")
    for sample in (doomed, kept):
        store.write(sample.nodes, sample.events)
    daily_before = store.query(f"SELECT sum(Runs) FROM {store.table(schema.AGENT_DAILY)} FINAL")[0][0]
    removed = retention.delete_run(store, "default", doomed.run_id)
    assert removed.rows == {
        schema.SPANS: len(doomed.nodes),
        schema.EVENTS: len(doomed.events),
        schema.LOGS: 0,
        schema.RUNS: 2,
        schema.RUNS_BY_ID: 2,
    }  # the run and its sub-agent run, in both copies of the runs
    assert removed.total == len(doomed.nodes) + len(doomed.events) + 4
    assert _runs(store) == {n.run_id for n in kept.nodes}
    assert _rows(store, schema.SPANS, "TraceId = {t:String}", t=doomed.nodes[0].trace_id) == 0
    assert _rows(store, schema.EVENTS, "TraceId = {t:String}", t=doomed.nodes[0].trace_id) == 0
    assert store.query(f"SELECT sum(Runs) FROM {store.table(schema.AGENT_DAILY)} FINAL")[0][0] == daily_before - 2


def test_forgetting_a_user_stays_within_the_tenant(store):
    theirs = [sample_run(60 + i, user_id="u-gone") for i in range(3)]
    others = [sample_run(70, user_id="u-stays"), sample_run(71, user_id="u-gone", tenant="acme")]
    for sample in (*theirs, *others):
        store.write(sample.nodes, sample.events)
    removed = retention.delete_user(store, "default", "u-gone")
    assert removed.rows[schema.RUNS] == removed.rows[schema.RUNS_BY_ID] == 6
    assert removed.rows[schema.SPANS] == sum(len(s.nodes) for s in theirs)
    assert _runs(store) == {n.run_id for n in others[0].nodes}
    assert _runs(store, "acme") == {n.run_id for n in others[1].nodes}  # another tenant's user of the same id
    assert _rows(store, schema.SPANS, "Tenant = 'default' AND UserId = 'u-gone'") == 0
    assert retention.delete_user(store, "default", "u-gone").total == 0  # nothing left to forget


def test_tenant_retention_settings(store):
    assert retention.get_retention(store, "acme") == retention.TenantRetention("acme", None, None)
    retention.set_retention(store, "acme", 7)
    assert retention.get_retention(store, "acme") == retention.TenantRetention("acme", 7, 7)
    retention.set_retention(store, "acme", 14, 3)
    assert retention.get_retention(store, "acme") == retention.TenantRetention("acme", 14, 3)
    for days, payload in ((0, None), (4000, None), (7, 8), (7, 0)):
        with pytest.raises(ValueError):
            retention.set_retention(store, "acme", days, payload)


_TTL_TABLES = (schema.SPANS, schema.EVENTS, schema.RUNS, schema.RUNS_BY_ID, schema.AGENT_DAILY, schema.TRACE_ID_TS)


def test_cleanup_applies_retention_now_and_reports(store):
    for table in _TTL_TABLES:
        store.client.command(f"SYSTEM STOP TTL MERGES {store.table(table)}")
    old = sample_run(80, started_at=datetime.now(UTC) - timedelta(days=40), ttl_days=30)
    fresh = sample_run(81)
    for sample in (old, fresh):
        store.write(sample.nodes, sample.events)
    # TTL merges stay stopped, so no background merge takes the old rows before cleanup counts them.
    removed = retention.cleanup(store)
    for table in _TTL_TABLES:
        store.client.command(f"SYSTEM START TTL MERGES {store.table(table)}")
    assert removed.rows[schema.SPANS] == len(old.nodes) and removed.rows[schema.EVENTS] == len(old.events)
    assert removed.rows[schema.RUNS] == removed.rows[schema.RUNS_BY_ID] == 2
    assert _runs(store) == {n.run_id for n in fresh.nodes}

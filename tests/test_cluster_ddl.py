"""`tracehouse schema --cluster NAME`: the same schema as ON CLUSTER, Replicated and Distributed DDL."""

from __future__ import annotations

import re

import pytest

from tracehouse.cli import main
from tracehouse.store import schema

DATA_TABLES = [spec.name for spec in schema.DATA_TABLES] + [schema.MIGRATIONS]


def _statements(capsys, *args: str) -> list[str]:
    assert main(["schema", *args]) == 0
    text = capsys.readouterr().out
    return [s.strip() for s in text.split(";\n\n") if s.strip().rstrip(";")]


@pytest.fixture
def cluster_ddl(capsys) -> list[str]:
    return [s.rstrip(";") for s in _statements(capsys, "--cluster", "agents_cluster", "--database", "th")]


def test_every_cluster_statement_parses(engine, cluster_ddl):
    # formatQuery runs ClickHouse's own parser on the statement without executing it.
    for statement in cluster_ddl:
        engine.query("SELECT formatQuery({q:String})", parameters={"q": statement})
    with pytest.raises(Exception, match="Syntax error"):
        engine.query("SELECT formatQuery({q:String})", parameters={"q": cluster_ddl[1].replace("ENGINE", "ENGIN")})


def test_every_cluster_statement_runs_on_the_cluster(cluster_ddl):
    assert cluster_ddl[0] == "CREATE DATABASE IF NOT EXISTS th ON CLUSTER agents_cluster"
    # A copy of rows runs once, through the Distributed tables, which route rows to their shards.
    copies = [s for s in cluster_ddl if s.startswith("INSERT INTO ")]
    assert copies[0] == f"INSERT INTO th.{schema.RUNS_BY_ID} SELECT * FROM th.{schema.RUNS}"
    assert len(copies) == 2 and copies[1].startswith(f"INSERT INTO th.{schema.AGENT_DAILY} (")  # its rebuild
    assert f"FROM th.{schema.RUNS} FINAL" in copies[1]
    for statement in (s for s in cluster_ddl if s not in copies):
        first_line = statement.splitlines()[0]
        # A DROP waits for the replicas to let go of the table's path (SYNC), so the table can
        # be created again under the same path.
        suffix = " ON CLUSTER agents_cluster SYNC" if first_line.startswith("DROP ") else " ON CLUSTER agents_cluster"
        assert first_line.endswith(suffix), first_line


def test_each_table_is_a_replicated_local_table_behind_a_distributed_one(cluster_ddl):
    text = "\n".join(cluster_ddl)
    assert "non_replicated_deduplication_window" not in text
    for table in DATA_TABLES:
        local = next(s for s in cluster_ddl if s.startswith(f"CREATE TABLE IF NOT EXISTS th.{table}_local "))
        engine = re.search(r"^ENGINE = (\w+)\((.*)\)$", local, re.MULTILINE)
        assert engine.group(1).startswith("ReplicatedReplacingMergeTree"), table
        assert engine.group(2).startswith(f"'/clickhouse/tables/{{shard}}/th/{table}_local', '{{replica}}'"), table
        assert "ttl_only_drop_parts = 1" in local or table in (schema.TENANTS, schema.MIGRATIONS, schema.RUNS_BY_ID)
        dist = next(s for s in cluster_ddl if s.startswith(f"CREATE TABLE IF NOT EXISTS th.{table} "))
        assert f"AS th.{table}_local" in dist
        assert re.search(rf"ENGINE = Distributed\(agents_cluster, th, {table}_local, .+\)$", dist), dist


def test_runs_and_their_spans_shard_together(cluster_ddl):
    for table in (schema.SPANS, schema.RUNS, schema.RUNS_BY_ID, schema.EVENTS):
        dist = next(s for s in cluster_ddl if s.startswith(f"CREATE TABLE IF NOT EXISTS th.{table} "))
        assert dist.endswith("cityHash64(Tenant, RunId))"), table


def test_the_lookup_views_read_and_write_local_tables(cluster_ddl):
    views = [s for s in cluster_ddl if "MATERIALIZED VIEW" in s]
    assert len(views) == 2
    assert f"TO th.{schema.TRACE_ID_TS}_local" in views[0] and f"FROM th.{schema.SPANS}_local" in views[0]
    assert f"TO th.{schema.RUNS_BY_ID}_local" in views[1] and f"FROM th.{schema.RUNS}_local" in views[1]


def test_single_server_ddl_has_no_cluster_parts(capsys):
    text = "\n".join(_statements(capsys))
    for word in ("ON CLUSTER", "Replicated", "Distributed", "_local"):
        assert word not in text
    assert text.startswith("CREATE DATABASE IF NOT EXISTS tracehouse")


def test_bad_names_are_refused(capsys):
    assert main(["schema", "--cluster", "x; DROP TABLE y"]) == 2
    assert "plain identifier" in capsys.readouterr().err

"""Grafana dashboards: current, well-formed, and every query runs on a filled store with the right shape.

Grafana is not available here; the structure checks follow Grafana's dashboard model and the
ClickHouse datasource's query model, and ``grafana_macros`` expands queries as the plugin does.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from conftest import fresh_store
from grafana_macros import ALL, Context, expand
from plan_helpers import columns_read

from tracehouse.demo import sample_runs
from tracehouse.ingest.metrics import Metrics
from tracehouse.model import LogRecord
from tracehouse.store import schema

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "dashboards"
FILES = sorted((DASHBOARDS / "tracehouse").glob("*.json"))

# The ClickHouse datasource's query types and the frame format each one goes with.
QUERY_TYPES = {"table": 1, "timeseries": 0, "logs": 2, "traces": 3}
PANEL_TYPES = {"stat", "timeseries", "table", "traces", "barchart", "piechart", "logs", "text"}
VARIABLE_TYPES = {"query", "custom", "constant", "textbox", "datasource", "interval", "adhoc"}
# Documented jsonData keys of grafana-clickhouse-datasource (v4 CHConfig).
CLICKHOUSE_JSON_DATA = {
    "version", "host", "port", "protocol", "secure", "path", "tlsSkipVerify", "tlsAuth", "tlsAuthWithCACert",
    "username", "defaultDatabase", "defaultTable", "dialTimeout", "queryTimeout", "validateSql", "logs", "traces",
    "customSettings", "enableSecureSocksProxy", "httpHeaders",
}  # fmt: skip
CLICKHOUSE_TRACES = {
    "defaultDatabase", "defaultTable", "otelEnabled", "otelVersion", "traceIdColumn", "spanIdColumn",
    "operationNameColumn", "parentSpanIdColumn", "serviceNameColumn", "durationColumn", "durationUnit",
    "startTimeColumn", "tagsColumn", "serviceTagsColumn",
}  # fmt: skip
TRACE_COLUMNS = ["traceID", "spanID", "operationName", "parentSpanID", "serviceName", "duration", "startTime",
                 "tags", "serviceTags"]  # fmt: skip


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def datasources() -> dict[str, dict]:
    doc = yaml.safe_load((DASHBOARDS / "provisioning" / "datasources" / "tracehouse.yaml").read_text())
    return {ds["uid"]: ds for ds in doc["datasources"]}


def clickhouse_queries(dash: dict) -> list[tuple[str, str, str]]:
    """(what, query type, sql) for every ClickHouse query of a dashboard, panels and variables."""
    out = []
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            out.append((f"variable {var['name']}", "variable", var["query"]))
    for panel in dash["panels"]:
        for target in panel["targets"]:
            if target["datasource"]["type"] == "grafana-clickhouse-datasource":
                out.append((f"panel {panel['title']!r}", target["queryType"], target["rawSql"]))
    return out


def test_the_four_dashboards_are_committed_and_current():
    assert {p.name for p in FILES} == {"agents-overview.json", "llm-usage.json", "run-explorer.json",
                                       "ingest-health.json"}  # fmt: skip
    done = subprocess.run([sys.executable, str(DASHBOARDS / "build.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_provisioning_files_are_what_grafana_reads():
    sources = datasources()
    ch = sources["tracehouse-clickhouse"]
    assert ch["type"] == "grafana-clickhouse-datasource"
    assert set(ch["jsonData"]) <= CLICKHOUSE_JSON_DATA, set(ch["jsonData"]) - CLICKHOUSE_JSON_DATA
    assert set(ch["jsonData"]["traces"]) <= CLICKHOUSE_TRACES
    assert ch["jsonData"]["traces"]["defaultTable"] == schema.SPANS
    assert ch["jsonData"]["logs"]["defaultTable"] == schema.LOGS
    assert ch["jsonData"]["protocol"] in {"http", "native"}
    assert set(ch["secureJsonData"]) == {"password"}
    assert sources["tracehouse-prometheus"]["type"] == "prometheus"
    provider = yaml.safe_load((DASHBOARDS / "provisioning" / "dashboards" / "tracehouse.yaml").read_text())
    (entry,) = provider["providers"]
    assert provider["apiVersion"] == 1 and entry["type"] == "file" and entry["options"]["path"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_dashboard_structure(path):
    dash = load(path)
    sources = datasources()
    for key in ("uid", "title", "schemaVersion", "panels", "templating", "time"):
        assert key in dash, key
    assert dash["schemaVersion"] >= 39
    names = [v["name"] for v in dash["templating"]["list"]]
    assert len(names) == len(set(names))
    for var in dash["templating"]["list"]:
        assert var["type"] in VARIABLE_TYPES, var
        if var["type"] == "query":
            assert var["datasource"]["uid"] in sources and var["query"].strip()
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["type"]
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0
        ds = panel["datasource"]
        assert sources[ds["uid"]]["type"] == ds["type"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["datasource"] == ds
            if ds["type"] == "grafana-clickhouse-datasource":
                assert target["editorType"] == "sql"
                assert QUERY_TYPES[target["queryType"]] == target["format"]
                assert (target["queryType"] == "traces") == (panel["type"] == "traces")
            else:
                assert target["expr"].strip()
        # Every variable a query names is defined on the dashboard.
        for text in [t.get("rawSql", "") or t.get("expr", "") for t in panel["targets"]]:
            for used in re.findall(r"\$\{(\w+)(?::\w+)?\}|\$(?!__)(\w+)", text):
                assert (used[0] or used[1]) in names, (panel["title"], used)


def test_prometheus_panels_name_the_receivers_metrics():
    families = {}
    for family in Metrics().registry.collect():
        suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}[family.type]
        for suffix in suffixes:
            families[family.name + suffix] = family
    seen = set()
    for path in FILES:
        for panel in load(path)["panels"]:
            for target in panel["targets"]:
                if "expr" in target:
                    for name in re.findall(r"\btracehouse_\w+", target["expr"]):
                        assert name in families, name
                        seen.add(name)
    assert {"tracehouse_items_rejected_total", "tracehouse_spool_pending_records"} <= seen


@pytest.fixture(scope="module")
def filled(engine, engine_dir):
    """A store with a week of sample runs in two tenants and some log records."""
    with fresh_store(engine, engine_dir) as store:
        yield _fill(store)


def _fill(store):
    samples = sample_runs(40, seed=5, days=7) + sample_runs(6, seed=6, days=7, tenant="acme")
    store.write([n for s in samples for n in s.nodes], [e for s in samples for e in s.events])
    now = datetime.now(UTC)
    store.insert_logs(
        [LogRecord(timestamp=now - timedelta(minutes=i), body=f"step {i}", service_name="agent") for i in range(5)]
    )
    return store, samples


def _context(store, samples, **selected) -> Context:
    now = datetime.now(UTC)
    trace = next(n.trace_id for n in samples[0].nodes)
    return Context(
        start=now - timedelta(days=8),
        end=now + timedelta(minutes=5),
        interval_s=3600,
        variables={"database": store.layout.database, "trace_id": trace, **selected},
    )


def _run(store, sql: str, ctx: Context):
    return store.client.query(expand(sql, ctx))


def _check_shape(what: str, kind: str, result) -> None:
    names, types = result.column_names, [t.base_type for t in result.column_types]
    rows = result.result_rows
    assert rows, f"{what}: no rows"
    numeric = re.compile(r"^(U?Int\d+|Float\d+|Decimal.*)$")
    if kind == "variable":
        assert len(names) == 1, (what, names)
    elif kind == "timeseries":
        assert names[0] == "time" and types[0].startswith("DateTime"), (what, names, types)
        rest = types[1:]
        if rest and not numeric.match(rest[0]):  # multi-series: time, series name, values
            assert rest[0] in {"String", "LowCardinality(String)"}, (what, rest)
            rest = rest[1:]
        assert rest and all(numeric.match(t) for t in rest), (what, names, types)
    elif kind == "stat":
        assert len(rows) == 1 and all(numeric.match(t) for t in types), (what, names, types)
    elif kind == "traces":
        assert list(names) == TRACE_COLUMNS, (what, names)
        assert len({r[1] for r in rows}) == len(rows) > 1
    else:
        assert names, what


def _queries_by_kind():
    for path in FILES:
        dash = load(path)
        kinds = {p["title"]: p["type"] for p in dash["panels"]}
        for what, query_type, sql in clickhouse_queries(dash):
            title = what.removeprefix("panel ").strip("'\"")
            kind = "variable" if query_type == "variable" else kinds.get(title, query_type)
            yield path.stem, what, kind, sql


def _with_options(store, samples, ctx: Context) -> Context:
    """Fills the values of each query variable from its own query, as Grafana does on load."""
    for path in FILES:
        for var in load(path)["templating"]["list"]:
            if var["type"] == "query" and var["name"] not in ctx.options:
                ctx.options[var["name"]] = [str(r[0]) for r in _run(store, var["query"], ctx).result_rows]
    ctx.options.setdefault("status", ["completed", "failed", "running", "cancelled", "incomplete"])
    return ctx


@pytest.mark.parametrize("selection", ["all", "one-agent"])
def test_every_clickhouse_query_runs_and_returns_its_panels_shape(filled, selection):
    store, samples = filled
    chosen = {} if selection == "all" else {"tenant": ["default"], "agent": ["trip-planner"], "status": [ALL]}
    ctx = _with_options(store, samples, _context(store, samples, **chosen))
    assert set(ctx.options["tenant"]) == {"default", "acme"}
    checked = 0
    for dashboard, what, kind, sql in _queries_by_kind():
        result = _run(store, sql, ctx)
        _check_shape(f"{dashboard} {what}", kind, result)
        checked += 1
    assert checked >= 30


def test_filters_change_the_numbers(filled):
    # The tenant and agent variables really filter: a selection counts fewer runs than All.
    store, samples = filled
    (runs_query,) = [sql for _, what, _, sql in _queries_by_kind() if what == "panel 'Runs'" and "count()" in sql]
    everything = _run(store, runs_query, _with_options(store, samples, _context(store, samples))).result_rows[0][0]
    one = _context(store, samples, tenant=["acme"])
    assert _run(store, runs_query, _with_options(store, samples, one)).result_rows[0][0] < everything
    assert everything == sum(len({n.run_id for n in s.nodes}) for s in samples)


def test_incomplete_runs_count_as_over_and_not_successful(store):
    from tracehouse.demo import sample_run

    done = sample_run(31, started_at=datetime.now(UTC) - timedelta(hours=2))
    crashed = sample_run(32, started_at=datetime.now(UTC) - timedelta(hours=2))  # its root never came
    store.write(done.nodes + [n for n in crashed.nodes if n.run_id != crashed.run_id or not n.run_root])
    ctx = _with_options(store, [done, crashed], _context(store, [done, crashed]))
    queries = {what: sql for _, what, _, sql in _queries_by_kind()}

    def rows(what: str) -> list[dict]:
        result = _run(store, queries[what], ctx)
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    assert [r["success_rate"] for r in rows("panel 'Success rate'")] == [3 / 4]  # each has a completed sub-run
    outcomes = rows("panel 'Runs by outcome'")
    assert sum(r["incomplete"] for r in outcomes) == 1 and sum(r["running"] for r in outcomes) == 0
    agents = {r["agent"]: r for r in rows("panel 'Agents'")}
    assert (agents[""]["incomplete"], agents[""]["success_rate"]) == (1, 0)  # only a root names its agent


def test_no_panel_reads_payload_columns_over_a_time_range(filled):
    store, samples = filled
    ctx = _with_options(store, samples, _context(store, samples))
    payload_readers = []
    for dashboard, what, _kind, sql in _queries_by_kind():
        read = columns_read(store, expand(sql, ctx))
        if read & schema.PAYLOAD_COLUMNS:
            payload_readers.append(what)
            # Allowed only for a read of one trace, bounded by its id.
            assert "TraceId = trace_id" in sql and "$__timeFilter" not in sql, (dashboard, what)
    assert payload_readers == ["panel 'Trace'"]  # the check sees the one panel that does read payloads

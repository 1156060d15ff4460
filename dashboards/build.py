"""Writes the Grafana dashboards in ``dashboards/tracehouse/`` from the definitions below.

    python dashboards/build.py          # rewrite the JSON files
    python dashboards/build.py --check  # exit 1 if a committed file is not what this makes

The JSON files are what Grafana loads (through ``provisioning/``, or by import); this script is
their one source, so the four dashboards share one set of variables, one tenant/agent filter
and one panel layout instead of four hand-edited copies. ``tests/test_dashboards.py`` checks
the committed files are current, expands every query's macros the way the ClickHouse
datasource does and runs it against a filled embedded store.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "tracehouse"

SCHEMA_VERSION = 41  # Grafana 12
CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "tracehouse-clickhouse"}
PROMETHEUS = {"type": "prometheus", "uid": "tracehouse-prometheus"}

# Query types of the ClickHouse datasource (its QueryType) with the matching data frame format.
_FORMATS = {"timeseries": 0, "table": 1, "logs": 2, "traces": 3}

# Filters shared by every panel: each collapses to 1=1 when its variable is "All".
TENANT = "$__conditionalAll(Tenant IN (${tenant:singlequote}), $tenant)"
AGENT = "$__conditionalAll(AgentName IN (${agent:singlequote}), $agent)"
MODEL = "$__conditionalAll(Model IN (${model:singlequote}), $model)"
STATUS = "$__conditionalAll(Status IN (${status:singlequote}), $status)"
SCOPE = f"{TENANT} AND {AGENT}"

RUNS = "${database}.runs FINAL"
SPANS = "${database}.otel_traces FINAL"
DAILY = "${database}.agent_daily FINAL"
# LLM calls with their run's agent and user: only a run's root span names the agent, so calls
# are attributed through the runs table (runs that started up to a day before the range).
LLM_SPANS = f"""${{database}}.otel_traces AS s FINAL
INNER JOIN (
    SELECT Tenant, RunId, AgentName, UserId FROM {RUNS}
    WHERE StartedAt >= $__fromTime - INTERVAL 1 DAY AND StartedAt <= $__toTime AND {SCOPE}
) AS r ON s.Tenant = r.Tenant AND s.RunId = r.RunId
WHERE $__timeFilter(s.Timestamp) AND s.NodeType = 'llm' AND {MODEL}"""

# One trace, bounded in time by the Collector-style trace id lookup table before the span read.
TRACE_WINDOW = """WITH
    '${trace_id}' AS trace_id,
    (SELECT min(Start) FROM ${database}.otel_traces_trace_id_ts WHERE TraceId = trace_id) AS trace_start,
    (SELECT max(End) + 1 FROM ${database}.otel_traces_trace_id_ts WHERE TraceId = trace_id) AS trace_end"""
ONE_TRACE = f"{SPANS} WHERE TraceId = trace_id AND Timestamp >= trace_start AND Timestamp <= trace_end AND {TENANT}"


# ---------------------------------------------------------------------------------------------
# Building blocks


def _variable_query(name: str, label: str, sql: str) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": CLICKHOUSE,
        "query": sql,
        "definition": sql,
        "multi": True,
        "includeAll": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "refresh": 2,  # on time range change
        "sort": 1,
        "hide": 0,
    }


def database_variable() -> dict:
    return {
        "name": "database",
        "label": "Database",
        "type": "constant",
        "query": "tracehouse",
        "hide": 2,
        "description": "The ClickHouse database tracehouse writes to (the store DSN's database).",
    }


def tenant_variable() -> dict:
    sql = "SELECT DISTINCT Tenant FROM ${database}.agent_daily WHERE $__dateFilter(Day) ORDER BY Tenant"
    return _variable_query("tenant", "Tenant", sql)


def agent_variable() -> dict:
    sql = f"SELECT DISTINCT AgentName FROM ${{database}}.agent_daily WHERE $__dateFilter(Day) AND {TENANT} ORDER BY AgentName"
    return _variable_query("agent", "Agent", sql)


def model_variable() -> dict:
    sql = (
        "SELECT DISTINCT Model FROM ${database}.otel_traces WHERE $__timeFilter(Timestamp) "
        f"AND NodeType = 'llm' AND Model != '' AND {TENANT} ORDER BY Model"
    )
    return _variable_query("model", "Model", sql)


def status_variable() -> dict:
    values = ["completed", "failed", "running", "cancelled", "incomplete"]
    return {
        "name": "status",
        "label": "Status",
        "type": "custom",
        "query": ",".join(values),
        "multi": True,
        "includeAll": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [{"selected": False, "text": v, "value": v} for v in values],
        "hide": 0,
    }


def trace_variable() -> dict:
    return {
        "name": "trace_id",
        "label": "Trace id",
        "type": "textbox",
        "query": "",
        "current": {"text": "", "value": ""},
        "hide": 0,
        "description": "Pick a run in the table above, or paste a trace id.",
    }


def sql_panel(kind: str, title: str, sql: str, *, query_type: str, width: int = 12, height: int = 8,
              unit: str | None = None, description: str = "", options: dict | None = None,
              overrides: list | None = None) -> dict:  # fmt: skip
    defaults: dict = {}
    if unit:
        defaults["unit"] = unit
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": CLICKHOUSE,
        "targets": [
            {
                "refId": "A",
                "datasource": CLICKHOUSE,
                "editorType": "sql",
                "queryType": query_type,
                "format": _FORMATS[query_type],
                "rawSql": sql.strip(),
            }
        ],
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
        "_size": (width, height),
    }


def stat(title: str, sql: str, *, unit: str | None = None, description: str = "") -> dict:
    options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value"}
    return sql_panel("stat", title, sql, query_type="table", width=6, height=4, unit=unit,
                     description=description, options=options)  # fmt: skip


def timeseries(title: str, sql: str, *, unit: str | None = None, description: str = "", width: int = 12) -> dict:
    options = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    return sql_panel("timeseries", title, sql, query_type="timeseries", width=width, unit=unit,
                     description=description, options=options)  # fmt: skip


def table(title: str, sql: str, *, description: str = "", width: int = 12, height: int = 8,
          overrides: list | None = None) -> dict:  # fmt: skip
    return sql_panel("table", title, sql, query_type="table", width=width, height=height,
                     description=description, options={"showHeader": True}, overrides=overrides)  # fmt: skip


def prometheus(title: str, exprs: dict[str, str], *, unit: str | None = None, description: str = "") -> dict:
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": PROMETHEUS,
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": PROMETHEUS, "expr": expr, "legendFormat": legend}
            for i, (legend, expr) in enumerate(exprs.items())
        ],
        "fieldConfig": {"defaults": {"unit": unit} if unit else {}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "_size": (12, 8),
    }


def link_override(field: str, title: str, url: str) -> dict:
    return {
        "matcher": {"id": "byName", "options": field},
        "properties": [{"id": "links", "value": [{"title": title, "url": url}]}],
    }


def dashboard(uid: str, title: str, description: str, variables: list[dict], panels: list[dict],
              *, time_from: str = "now-7d") -> dict:  # fmt: skip
    """Lays the panels out left to right in rows of 24 columns and numbers them."""
    placed, x, y, row_height = [], 0, 0, 0
    for number, panel in enumerate(panels, start=1):
        width, height = panel.pop("_size")
        if x + width > 24:
            x, y, row_height = 0, y + row_height, 0
        placed.append({"id": number, "gridPos": {"h": height, "w": width, "x": x, "y": y}, **panel})
        x, row_height = x + width, max(row_height, height)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["tracehouse"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "utc",
        "refresh": "1m",
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "title": "tracehouse",
                "tags": ["tracehouse"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }  # fmt: skip
        ],
        "templating": {"list": variables},
        "panels": placed,
    }


# ---------------------------------------------------------------------------------------------
# The dashboards

# Runs whose root span arrived (their durations are whole), and runs that are over: those and
# the incomplete ones, whose root never came (their agent most likely crashed).
FINISHED = "Status IN ('completed', 'failed', 'cancelled')"
OVER = "Status IN ('completed', 'failed', 'cancelled', 'incomplete')"


def agents_overview() -> dict:
    where = f"$__timeFilter(StartedAt) AND {SCOPE}"
    panels = [
        stat("Runs", f"SELECT count() AS runs FROM {RUNS} WHERE {where}"),
        stat("Success rate",
             f"SELECT countIf(Status = 'completed') / greatest(countIf({OVER}), 1) AS success_rate "
             f"FROM {RUNS} WHERE {where}",
             unit="percentunit",
             description="Completed runs out of the runs that are over, incomplete ones included (running runs left out)."),
        stat("Failed runs", f"SELECT countIf(Status = 'failed') AS failed FROM {RUNS} WHERE {where}"),
        stat("Duration p50 / p95",
             f"SELECT quantile(0.5)(DurationNs) / 1e9 AS p50, quantile(0.95)(DurationNs) / 1e9 AS p95 "
             f"FROM {RUNS} WHERE {where} AND {FINISHED}",
             unit="s"),
        timeseries("Runs by outcome",
                   f"SELECT $__timeInterval(StartedAt) AS time, countIf(Status = 'completed') AS completed, "
                   f"countIf(Status = 'failed') AS failed, countIf(Status = 'cancelled') AS cancelled, "
                   f"countIf(Status = 'incomplete') AS incomplete, "
                   f"countIf(Status = 'running') AS running FROM {RUNS} WHERE {where} GROUP BY time ORDER BY time",
                   description="Incomplete: the run's root span never arrived and it went quiet (its agent most "
                               "likely crashed)."),
        timeseries("Run duration p50 / p95",
                   f"SELECT $__timeInterval(StartedAt) AS time, quantile(0.5)(DurationNs) / 1e9 AS p50, "
                   f"quantile(0.95)(DurationNs) / 1e9 AS p95 FROM {RUNS} WHERE {where} AND {FINISHED} "
                   f"GROUP BY time ORDER BY time",
                   unit="s"),
        timeseries("Failed runs by agent",
                   f"SELECT $__timeInterval(StartedAt) AS time, AgentName, countIf(Status = 'failed') AS failed "
                   f"FROM {RUNS} WHERE {where} GROUP BY time, AgentName ORDER BY time",
                   description="One series per agent."),
        timeseries("Failed nodes over time",
                   f"SELECT $__timeInterval(StartedAt) AS time, sum(FailedNodes) AS failed_nodes "
                   f"FROM {RUNS} WHERE {where} GROUP BY time ORDER BY time",
                   description="Nodes that failed inside runs, retried or not: errors the run outcome can hide."),
        table("Agents",
              f"""SELECT AgentName AS agent, sum(Runs) AS runs, sum(Completed) AS completed, sum(Failed) AS failed,
    sum(Incomplete) AS incomplete,
    round(sum(Completed) / greatest(sum(Completed) + sum(Failed) + sum(Cancelled) + sum(Incomplete), 1), 3) AS success_rate,
    round(quantilesTDigestMerge(0.5, 0.95)(DurationQuantiles)[1] / 1e9, 2) AS p50_s,
    round(quantilesTDigestMerge(0.5, 0.95)(DurationQuantiles)[2] / 1e9, 2) AS p95_s,
    round(sum(Nodes) / greatest(sum(Runs), 1), 1) AS avg_nodes, sum(LlmCalls) AS llm_calls,
    sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens, round(sum(CostUsd), 4) AS cost_usd
FROM {DAILY} WHERE $__dateFilter(Day) AND {SCOPE}
GROUP BY agent ORDER BY runs DESC""",
              description="From the daily rollup (whole days of the time range).", width=24),
        table("Most frequent errors",
              f"SELECT AgentName AS agent, ErrorMessage AS error, count() AS runs, max(StartedAt) AS last_seen "
              f"FROM {RUNS} WHERE {where} AND Status = 'failed' GROUP BY agent, error ORDER BY runs DESC LIMIT 20",
              width=24),
    ]  # fmt: skip
    return dashboard("tracehouse-agents", "tracehouse / Agents overview",
                     "Runs, success rate, durations and errors by agent.",
                     [database_variable(), tenant_variable(), agent_variable()], panels)  # fmt: skip


def llm_usage() -> dict:
    panels = [
        stat("LLM calls", f"SELECT count() AS calls FROM {LLM_SPANS}"),
        stat("Input tokens", f"SELECT sum(InputTokens) AS input_tokens FROM {LLM_SPANS}", unit="short"),
        stat("Output tokens", f"SELECT sum(OutputTokens) AS output_tokens FROM {LLM_SPANS}", unit="short"),
        stat("Cost", f"SELECT sum(CostUsd) AS cost FROM {LLM_SPANS}", unit="currencyUSD"),
        timeseries("Cost by model",
                   f"SELECT $__timeInterval(s.Timestamp) AS time, Model, sum(CostUsd) AS cost FROM {LLM_SPANS} "
                   f"GROUP BY time, Model ORDER BY time",
                   unit="currencyUSD"),
        timeseries("Tokens",
                   f"SELECT $__timeInterval(s.Timestamp) AS time, sum(InputTokens) AS input, sum(OutputTokens) AS output, "
                   f"sum(CacheReadTokens) AS cache_read, sum(ReasoningTokens) AS reasoning FROM {LLM_SPANS} "
                   f"GROUP BY time ORDER BY time",
                   unit="short"),
        table("By model and provider",
              f"SELECT Model AS model, Provider AS provider, count() AS calls, sum(InputTokens) AS input_tokens, "
              f"sum(OutputTokens) AS output_tokens, round(sum(CostUsd), 4) AS cost_usd, "
              f"round(quantile(0.95)(Duration) / 1e9, 2) AS p95_latency_s FROM {LLM_SPANS} "
              f"GROUP BY model, provider ORDER BY cost_usd DESC"),
        table("By agent",
              f"SELECT r.AgentName AS agent, count() AS calls, sum(InputTokens) AS input_tokens, "
              f"sum(OutputTokens) AS output_tokens, round(sum(CostUsd), 4) AS cost_usd FROM {LLM_SPANS} "
              f"GROUP BY agent ORDER BY cost_usd DESC"),
        table("By user (top 20)",
              f"SELECT r.UserId AS user, count() AS calls, sum(InputTokens) + sum(OutputTokens) AS tokens, "
              f"round(sum(CostUsd), 4) AS cost_usd FROM {LLM_SPANS} GROUP BY user ORDER BY cost_usd DESC LIMIT 20"),
        table("Most expensive runs",
              f"SELECT RunId AS run_id, TraceId AS trace_id, AgentName AS agent, UserId AS user, StartedAt AS started, "
              f"LlmCalls AS llm_calls, InputTokens + OutputTokens AS tokens, round(CostUsd, 4) AS cost_usd "
              f"FROM {RUNS} WHERE $__timeFilter(StartedAt) AND {SCOPE} ORDER BY CostUsd DESC LIMIT 20",
              overrides=[link_override("run_id", "Open in the run explorer",
                                       "/d/tracehouse-runs/?var-trace_id=${__data.fields.trace_id}&${__url_time_range}")]),
    ]  # fmt: skip
    return dashboard("tracehouse-llm-usage", "tracehouse / LLM usage and cost",
                     "Tokens and cost of LLM calls by model, provider, agent and user.",
                     [database_variable(), tenant_variable(), agent_variable(), model_variable()], panels)  # fmt: skip


def run_explorer() -> dict:
    attributes = "mapUpdate(SpanAttributes, PayloadAttributes)"
    trace_tags = (
        f"arrayMap(key -> map('key', key, 'value', {attributes}[key]), mapKeys({attributes})) AS tags, "
        "arrayMap(key -> map('key', key, 'value', ResourceAttributes[key]), mapKeys(ResourceAttributes)) AS serviceTags"
    )
    panels = [
        table("Runs",
              f"""SELECT StartedAt AS started, RunId AS run_id, TraceId AS trace_id, AgentName AS agent, Status AS status,
    round(DurationNs / 1e9, 2) AS duration_s, NodeCount AS nodes, LlmCalls AS llm_calls,
    InputTokens + OutputTokens AS tokens, round(CostUsd, 4) AS cost_usd, UserId AS user,
    ConversationId AS conversation, InputPreview AS input, OutputPreview AS output, ErrorMessage AS error
FROM {RUNS}
WHERE $__timeFilter(StartedAt) AND {SCOPE} AND {STATUS}
ORDER BY StartedAt DESC LIMIT 500""",
              description="Newest first, previews only. Click a run to open its trace below.",
              width=24, height=10,
              overrides=[link_override("run_id", "Show this run's trace",
                                       "/d/tracehouse-runs/?var-trace_id=${__data.fields.trace_id}&${__url_time_range}"
                                       "&${tenant:queryparam}&${agent:queryparam}&${status:queryparam}")]),
        table("Nodes of the selected trace",
              f"""{TRACE_WINDOW}
SELECT Timestamp AS started, SpanName AS name, NodeType AS type, Status AS status,
    round(Duration / 1e6, 1) AS duration_ms, RunId AS run_id, Model AS model,
    InputTokens AS input_tokens, OutputTokens AS output_tokens, round(CostUsd, 6) AS cost_usd,
    InputPreview AS input, OutputPreview AS output, StatusMessage AS error
FROM {ONE_TRACE}
ORDER BY Timestamp""",
              width=24, height=10),
        sql_panel("traces", "Trace",
                  f"""{TRACE_WINDOW}
SELECT TraceId AS traceID, SpanId AS spanID, SpanName AS operationName, ParentSpanId AS parentSpanID,
    ServiceName AS serviceName, Duration / 1e6 AS duration, Timestamp AS startTime,
    {trace_tags}
FROM {ONE_TRACE}
ORDER BY Timestamp""",
                  query_type="traces", width=24, height=16,
                  description="The OTel trace view of one trace, with every attribute the spans carried "
                              "(payloads included: this reads one trace, never a time range)."),
    ]  # fmt: skip
    return dashboard("tracehouse-runs", "tracehouse / Run explorer",
                     "Find a run, then open its nodes and its trace.",
                     [database_variable(), tenant_variable(), agent_variable(), status_variable(), trace_variable()],
                     panels, time_from="now-24h")  # fmt: skip


def ingest_health() -> dict:
    ingested = f"${{database}}.otel_traces WHERE $__timeFilter(IngestedAt) AND {TENANT}"
    rate = "[$__rate_interval]"
    panels = [
        timeseries("Spans stored per second",
                   f"SELECT $__timeInterval(IngestedAt) AS time, count() / $__interval_s AS spans_per_second "
                   f"FROM {ingested} GROUP BY time ORDER BY time",
                   unit="short", description="By the time rows became visible in ClickHouse (IngestedAt)."),
        timeseries("Span end to stored, p50 / p99",
                   f"SELECT $__timeInterval(IngestedAt) AS time, "
                   f"quantile(0.5)(greatest(dateDiff('millisecond', Timestamp + toIntervalNanosecond(Duration), IngestedAt), 0)) / 1e3 AS p50, "
                   f"quantile(0.99)(greatest(dateDiff('millisecond', Timestamp + toIntervalNanosecond(Duration), IngestedAt), 0)) / 1e3 AS p99 "
                   f"FROM {ingested} GROUP BY time ORDER BY time",
                   unit="s", description="Includes the exporter's own batching delay in the application."),
        timeseries("Log records stored per second",
                   f"SELECT $__timeInterval(IngestedAt) AS time, count() / $__interval_s AS records_per_second "
                   f"FROM ${{database}}.otel_logs WHERE $__timeFilter(IngestedAt) AND {TENANT} GROUP BY time ORDER BY time",
                   unit="short"),
        table("Spans stored by tenant and service",
              f"SELECT Tenant AS tenant, ServiceName AS service, count() AS spans, max(IngestedAt) AS last_stored "
              f"FROM {ingested} GROUP BY tenant, service ORDER BY spans DESC"),
        prometheus("Acknowledged and rejected per second (receiver metrics)", {
            "acknowledged {{signal}}": f"sum by (signal) (rate(tracehouse_items_accepted_total{rate}))",
            "rejected {{reason}}": f"sum by (reason) (rate(tracehouse_items_rejected_total{rate}))",
        }, unit="short", description="Needs Prometheus scraping the receivers' /metrics."),
        prometheus("Spool depth (receiver metrics)", {
            "records": "sum(tracehouse_spool_pending_records)",
            "bytes": "sum(tracehouse_spool_pending_bytes)",
        }, description="Acknowledged but not yet stored. Growing without end means the store is down or slow."),
        prometheus("Acknowledged to visible, p99 (receiver metrics)", {
            "p99": f"histogram_quantile(0.99, sum by (le) (rate(tracehouse_ingest_lag_seconds_bucket{rate})))",
            "insert p99": f"histogram_quantile(0.99, sum by (le) (rate(tracehouse_insert_seconds_bucket{rate})))",
        }, unit="s"),
        prometheus("Store write errors and batch size (receiver metrics)", {
            "write errors/s": f"sum(rate(tracehouse_store_write_errors_total{rate}))",
            "rows per batch": f"sum(rate(tracehouse_insert_batch_rows_sum{rate})) / sum(rate(tracehouse_insert_batch_rows_count{rate}))",
        }),
    ]  # fmt: skip
    return dashboard("tracehouse-ingest", "tracehouse / Ingest health",
                     "What the receivers take in and store, and how far behind the store is.",
                     [database_variable(), tenant_variable()], panels, time_from="now-6h")  # fmt: skip


DASHBOARDS = {
    "agents-overview.json": agents_overview,
    "llm-usage.json": llm_usage,
    "run-explorer.json": run_explorer,
    "ingest-health.json": ingest_health,
}


def render(build) -> str:
    return json.dumps(build(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the committed files are current")
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path, text = OUT / name, render(build)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print("out of date: " + ", ".join(stale) + " (run python dashboards/build.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

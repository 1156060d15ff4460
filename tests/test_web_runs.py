"""The runs view (``/``) against a real `tracehouse serve`: its filters, search, time range and
paging over HTTP, the charts, the tenants, and in headless Chromium filtering by status and a new
run appearing without a reload."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.trace import Status, StatusCode, set_span_in_context
from otel_helpers import Recorder
from plan_helpers import columns_read
from serve_helpers import Server
from test_web import fetch, send, wait_for_runs

from tracehouse import semconv
from tracehouse.client import Client
from tracehouse.demo import sample_run
from tracehouse.responses import Activity, RunsPage
from tracehouse.store import queries, schema
from tracehouse.store.reads import ReadService

KEYS = "k1:acme,k2:globex"
NOW = datetime.now(UTC)


def runs_body(*runs: dict) -> bytes:
    """Runs as the OTel SDK records them, in one OTLP/protobuf body. Each run: ``run_id``, and
    optionally ``agent``, ``input``, ``output``, ``user``, ``conversation``, ``model``, ``fail``,
    ``tenant``, ``ago`` (a timedelta before now), ``root=False`` (only a node: still running),
    ``chat=False`` (only the root: the end of a run sent without it)."""
    rec = Recorder(service="runs-page-agent")
    for run in runs:
        start = NOW - run.get("ago", timedelta(minutes=5))
        t0 = int(start.timestamp() * 1e9)
        common = {semconv.TRACEHOUSE_RUN_ID: run["run_id"]}
        if run.get("tenant"):
            common[semconv.TRACEHOUSE_TENANT] = run["tenant"]
        agent = run.get("agent", "planner")
        root_attrs = {
            semconv.GEN_AI_OPERATION_NAME: "invoke_agent",
            semconv.GEN_AI_AGENT_NAME: agent,
            semconv.TRACEHOUSE_RUN_INPUT: run.get("input", f"question {run['run_id']}"),
            semconv.TRACEHOUSE_RUN_OUTPUT: run.get("output", "an answer"),
            **({semconv.USER_ID: run["user"]} if run.get("user") else {}),
            **({semconv.GEN_AI_CONVERSATION_ID: run["conversation"]} if run.get("conversation") else {}),
        }
        model = run.get("model", "gpt-4o-mini")
        chat_attrs = {
            semconv.GEN_AI_OPERATION_NAME: "chat",
            semconv.GEN_AI_REQUEST_MODEL: model,
            semconv.GEN_AI_USAGE_INPUT_TOKENS: 100,
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 20,
        }
        if run.get("root", True):
            root = rec.tracer.start_span(f"invoke_agent {agent}", attributes={**common, **root_attrs}, start_time=t0)
            context = set_span_in_context(root)
        else:
            root, context = None, None
        if run.get("chat", True):
            chat = rec.tracer.start_span(
                f"chat {model}", context=context, attributes={**common, **chat_attrs}, start_time=t0 + 1_000_000
            )
            chat.end(end_time=t0 + 200_000_000)
        if root is not None:
            if run.get("fail"):
                root.set_status(Status(StatusCode.ERROR, "boom"))
            root.end(end_time=t0 + 300_000_000)
    return encode_spans(rec.exporter.get_finished_spans()).SerializeToString()


RUNS = [
    {"run_id": "r-kyoto", "input": "Plan a trip to Kyoto", "user": "alice", "conversation": "conv-1"},
    {
        "run_id": "r-flight",
        "input": "Book a flight",
        "user": "bob",
        "model": "claude-x",
        "fail": True,
        "ago": timedelta(minutes=6),
    },
    {
        "run_id": "r-support",
        "agent": "support-bot",
        "input": "Reset my password",
        "output": "Done: password reset LINK SENT",
        "user": "alice",
        "conversation": "conv-2",
        "ago": timedelta(minutes=20),
    },
    {"run_id": "r-old", "input": "An old Kyoto question", "ago": timedelta(days=3)},
    {"run_id": "r-running", "root": False, "ago": timedelta(minutes=1)},
    {"run_id": "r-acme", "tenant": "acme", "input": "Kyoto for acme"},
]
PAGER = [{"run_id": f"r-page-{i:02d}", "agent": "pager", "ago": timedelta(minutes=30, seconds=i)} for i in range(52)]


def _start(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str) -> Server:
    data = str(tmp_path_factory.mktemp(name) / "data")
    return Server(data, ("--batch-interval", "0.1", "--run-idle-timeout", "3600", *args)).start()


@pytest.fixture(scope="module")
def runs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _start(tmp_path_factory, "web-runs")
    try:
        send(srv, runs_body(*RUNS))
        send(srv, runs_body(*PAGER))
        wait_for_runs(srv, {r["run_id"] for r in RUNS + PAGER if not r.get("tenant")})
        wait_for_runs(srv, {"r-acme"}, tenant="acme")
        yield srv
    finally:
        srv.stop(signal.SIGKILL)


def shown(srv: Server, headers: dict | None = None, **query: str) -> list[str]:
    """The run ids the runs view lists for the query, in order."""
    reply = fetch(f"{srv.http}/?{urlencode(query)}", headers=headers)
    assert reply.status == 200, reply.text[:500]
    return re.findall(r'<tr data-run-id="([^"]+)"', reply.text)


def test_the_filters_narrow_the_list(runs_server):
    everything = shown(runs_server)
    assert everything[:4] == ["r-running", "r-kyoto", "r-flight", "r-support"]  # newest first
    assert len(everything) == 50 and "r-acme" not in everything  # a page; not another tenant's
    assert shown(runs_server, page="2")[-1] == "r-old"  # 3 days old: in the last 7 days
    assert shown(runs_server, agent="planner") == ["r-kyoto", "r-flight", "r-old"]
    assert shown(runs_server, status="failed") == ["r-flight"]
    assert shown(runs_server, status="running") == ["r-running"]
    assert shown(runs_server, status="completed", agent="support-bot") == ["r-support"]
    assert shown(runs_server, user="alice") == ["r-kyoto", "r-support"]
    assert shown(runs_server, conversation="conv-1") == ["r-kyoto"]
    assert shown(runs_server, model="claude-x") == ["r-flight"]
    assert shown(runs_server, agent="planner", range="24h") == ["r-kyoto", "r-flight"]
    since = (NOW - timedelta(days=4)).isoformat()
    until = (NOW - timedelta(days=2)).isoformat()
    assert shown(runs_server, since=since, until=until) == ["r-old"]
    assert shown(runs_server, agent="nobody") == []
    nothing = fetch(f"{runs_server.http}/?agent=nobody").text
    assert "No runs match these filters" in nothing and "No runs yet" not in nothing
    for bad in ("status=nope", "range=2y", "since=yesterday"):
        reply = fetch(f"{runs_server.http}/?{bad}")
        assert reply.status == 400 and "<tr data-run-id" not in reply.text, bad


def test_the_search_looks_in_inputs_and_outputs_within_the_range(runs_server):
    assert shown(runs_server, q="kyoto") == ["r-kyoto", "r-old"]  # any case; not acme's
    assert shown(runs_server, q="kyoto", range="24h") == ["r-kyoto"]
    assert shown(runs_server, q="link sent") == ["r-support"]  # the output
    assert shown(runs_server, q="kyoto", user="alice") == ["r-kyoto"]
    # The search is a bound value: quotes and SQL in it are text to look for.
    for text in ("'; DROP TABLE runs; --", "%", "_", "\\"):
        assert shown(runs_server, q=text) == [], text
    assert len(shown(runs_server)) == 50  # still there


def test_pages_keep_the_filters(runs_server):
    first = fetch(f"{runs_server.http}/?agent=pager")
    rows = re.findall(r'<tr data-run-id="([^"]+)"', first.text)
    assert rows == [f"r-page-{i:02d}" for i in range(50)]
    older = re.search(r'<a rel="next" href="([^"]+)"', first.text).group(1)
    assert older == "/?agent=pager&amp;page=2" and 'rel="prev"' not in first.text
    second = fetch(f"{runs_server.http}/?agent=pager&page=2")
    assert re.findall(r'<tr data-run-id="([^"]+)"', second.text) == ["r-page-50", "r-page-51"]
    assert re.search(r'<a rel="prev" href="([^"]+)"', second.text).group(1) == "/?agent=pager"
    assert 'rel="next"' not in second.text and "runs 51–52" in second.text
    assert shown(runs_server, agent="pager", page="9") == []


def test_rows_link_to_the_run_and_the_agent_and_charts_draw_the_range(runs_server):
    page = fetch(f"{runs_server.http}/?agent=support-bot").text
    row = re.search(r'<tr data-run-id="r-support".*?</tr>', page, re.DOTALL).group(0)
    assert 'href="/runs/r-support"' in row and 'href="/agents/support-bot"' in row
    assert "status-completed" in row and ">120<" in row and ">1<" in row  # tokens, nodes
    assert "Reset my password" in row
    # Three charts, drawn server-side as SVG, styled by class (no style attribute, no script).
    charts = re.findall(
        r'<figure class="chart chart-(\w+)">.*?<strong class="chart-total">([^<]*)</strong>', page, re.S
    )
    assert [kind for kind, _ in charts] == ["runs", "failed", "cost"]
    assert dict(charts)["runs"] == "1" and dict(charts)["failed"] == "0"
    assert page.count("<svg") == 3 and " style=" not in page and "<style" not in page
    assert len(re.findall(r"<rect ", page)) == 2  # one bucket with a run (and its cost), none failed
    failed = fetch(f"{runs_server.http}/?status=failed").text
    assert re.search(r'chart-failed">.*?<strong class="chart-total">1</strong>', failed, re.S)


def test_the_live_refetch_gets_the_section_with_the_same_filters(runs_server):
    reply = fetch(f"{runs_server.http}/?status=failed", headers={"HX-Request": "true"})
    assert reply.status == 200 and reply.text.lstrip().startswith('<section id="runs"')
    assert "<html" not in reply.text and "run-filters" not in reply.text
    assert re.findall(r'<tr data-run-id="([^"]+)"', reply.text) == ["r-flight"]
    running = fetch(f"{runs_server.http}/?status=running", headers={"HX-Request": "true"}).text
    assert 'data-running="yes"' in running


def test_the_api_and_the_client_answer_the_same(runs_server):
    client = Client(runs_server.http)
    page = client.runs(agent="planner", search="KYOTO")
    assert isinstance(page, RunsPage) and [r.run_id for r in page.runs] == ["r-kyoto", "r-old"]
    assert page.runs[0].user_id == "alice" and page.runs[0].tokens == 120 and not page.more
    assert [r.run_id for r in client.runs(agent="pager", skip=50).runs] == ["r-page-50", "r-page-51"]
    assert client.runs(agent="pager", limit=50).more
    activity = client.activity(status="failed", since=NOW - timedelta(hours=1))
    assert isinstance(activity, Activity) and sum(b.failed for b in activity.buckets) == 1
    span = (activity.until - activity.since).total_seconds()  # until is now: later in a long test run
    assert activity.bucket_seconds == 300 and abs(len(activity.buckets) - span / 300) <= 1.5
    assert [r.run_id for r in Client(runs_server.http, tenant="acme").runs().runs] == ["r-acme"]
    bad = fetch(f"{runs_server.http}/api/v1/runs?status=nope")
    assert bad.status == 422 and "status must be one of" in json.loads(bad.text)["detail"]


def test_an_empty_store_says_what_to_do(server):
    srv = server()
    page = fetch(f"{srv.http}/?range=24h").text
    assert "No runs yet" in page and "<svg" not in page and "<table" not in page
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in page
    filtered = fetch(f"{srv.http}/?agent=x").text
    assert "No runs match these filters" in filtered


def test_with_keys_only_the_key_s_tenant_shows(tmp_path_factory):
    srv = _start(tmp_path_factory, "web-runs-keyed", "--api-keys", KEYS)
    try:
        send(srv, runs_body({"run_id": "r-acme-1", "input": "acme's Kyoto"}), key="k1")
        send(srv, runs_body({"run_id": "r-globex-1", "input": "globex's Kyoto"}), key="k2")
        wait_for_runs(srv, {"r-acme-1"}, key="k1")
        wait_for_runs(srv, {"r-globex-1"}, key="k2")
        assert fetch(f"{srv.http}/?q=kyoto").status == 303  # not signed in
        acme = {"Cookie": "tracehouse_key=k1"}
        assert shown(srv, acme, q="kyoto") == ["r-acme-1"]
        assert shown(srv, acme, tenant="globex") == ["r-acme-1"]  # the key decides
        assert shown(srv, {"Cookie": "tracehouse_key=k2"}) == ["r-globex-1"]
        assert [r.run_id for r in Client(srv.http, api_key="k2").runs(search="kyoto").runs] == ["r-globex-1"]
        assert sum(b.runs for b in Client(srv.http, api_key="k1").activity().buckets) == 1
    finally:
        srv.stop(signal.SIGKILL)


# The read service, on the store ---------------------------------------------------------------


def test_the_runs_read_lists_top_level_runs_and_reads_no_payload(store):
    planned = sample_run(41, agent="trip-planner", started_at=NOW - timedelta(hours=1))
    theirs = sample_run(42, tenant="acme")
    for sample in (planned, theirs):
        store.write(sample.nodes, sample.events)
    reads = ReadService(store)
    page = reads.runs()
    assert [r.run_id for r in page.runs] == [planned.run_id]  # not its budget-checker sub-agent run
    assert page.runs[0].node_count > 0 and page.runs[0].cost_usd > 0 and not page.more
    # The model of an LLM call in the run or in its sub-agent run; the window bounds everything.
    assert [r.run_id for r in reads.runs(model="claude-sonnet-4").runs] == [planned.run_id]
    assert reads.runs(model="gpt-4o-mini", since=NOW - timedelta(minutes=30)).runs == []
    assert reads.runs(status="success").runs == reads.runs(status="completed").runs
    for bad in (
        lambda: reads.runs(status="nope"),
        lambda: reads.runs(limit=0),
        lambda: reads.runs(since=NOW, until=NOW - timedelta(hours=1)),
        lambda: reads.activity(since=NOW - timedelta(days=4000), until=NOW),
    ):
        with pytest.raises(ValueError):
            bad()
    activity = reads.activity(since=NOW - timedelta(hours=6), until=NOW)
    assert activity.bucket_seconds == 900 and len(activity.buckets) in (24, 25)
    assert sum(b.runs for b in activity.buckets) == 1 and sum(b.cost_usd for b in activity.buckets) > 0
    # Every filter at once reads only small columns (the runs table's, the spans' Model).
    sql, params = queries.search_runs_sql(
        store, "default", since=NOW - timedelta(days=1), until=NOW, agent="trip-planner", status="completed",
        user="u", conversation="c", model="gpt-4o-mini", search="kyoto",
    )  # fmt: skip
    read = columns_read(store, sql, params)
    assert "InputPreview" in read and "OutputPreview" in read
    assert not read & schema.PAYLOAD_COLUMNS, read & schema.PAYLOAD_COLUMNS


# In Chromium ----------------------------------------------------------------------------------


def test_the_runs_view_in_chromium(browser, runs_server):
    from selenium.webdriver.support.ui import Select

    browser.open(f"{runs_server.http}/")
    browser.one('tr[data-run-id="r-kyoto"]')
    assert len(browser.css("svg.spark")) == 3 and browser.css(".chart-runs rect")
    # The bars are filled by the stylesheet (a class, no style attribute).
    fill = browser.one(".chart-failed rect").value_of_css_property("fill")
    assert fill == "rgb(180, 35, 24)", fill
    # Filter by status in the form: the address keeps the filter, the list follows.
    Select(browser.one('#run-filters select[name="status"]')).select_by_value("failed")
    browser.wait(lambda: "status=failed" in browser.driver.current_url, "the status in the address")
    rows = browser.wait(lambda: browser.css("tr[data-run-id]"), "the failed runs")
    assert [r.get_attribute("data-run-id") for r in rows] == ["r-flight"]
    assert Select(browser.one('#run-filters select[name="status"]')).first_selected_option.text == "failed"
    # A search, typed after "/" and sent with Enter, keeps the status.
    from selenium.webdriver.common.action_chains import ActionChains

    search = browser.one('#run-filters input[name="q"]')
    browser.one("body").click()
    ActionChains(browser.driver).send_keys("/").perform()
    browser.wait(lambda: browser.driver.switch_to.active_element == search, "the search focused by /")
    assert search.get_attribute("value") == ""  # the "/" is not typed into it
    ActionChains(browser.driver).send_keys("no such text\n").perform()
    browser.wait(lambda: "q=no+such+text" in browser.driver.current_url, "the search in the address")
    assert "status=failed" in browser.driver.current_url
    assert "No runs match these filters" in browser.text("#runs")
    browser.one("#run-filters a.clear").click()
    browser.wait(lambda: urlsplit(browser.driver.current_url).query == "", "the filters cleared")
    browser.one('tr[data-run-id="r-kyoto"] a.run-link')
    assert browser.one('tr[data-run-id="r-kyoto"] a.run-link').get_attribute("href").endswith("/runs/r-kyoto")
    # "/" on another page goes to the runs, with the search focused.
    browser.open(f"{runs_server.http}/agents")
    browser.one("#agents")
    ActionChains(browser.driver).send_keys("/").perform()
    browser.wait(lambda: urlsplit(browser.driver.current_url).path == "/", "the runs page")
    browser.wait(lambda: browser.driver.switch_to.active_element.get_attribute("id") == "search", "the search focused")


def test_a_new_run_appears_without_a_reload_and_the_filters_stay(browser, runs_server):
    browser.open(f"{runs_server.http}/?agent=live-agent&status=completed")
    assert "No runs match these filters" in browser.text("#runs")
    browser.wait(lambda: browser.driver.execute_script("return document.body.dataset.live") == "on", "live stream")
    browser.driver.execute_script("window.stillTheSamePage = true")
    send(runs_server, runs_body({"run_id": "r-live-failed", "agent": "live-agent", "fail": True, "ago": timedelta(0)}))
    send(runs_server, runs_body({"run_id": "r-live-other", "agent": "someone-else", "ago": timedelta(0)}))
    send(runs_server, runs_body({"run_id": "r-live-ok", "agent": "live-agent", "ago": timedelta(0)}))
    browser.one('tr[data-run-id="r-live-ok"]')
    time.sleep(0.5)  # any later refetch has landed
    assert [r.get_attribute("data-run-id") for r in browser.css("tr[data-run-id]")] == ["r-live-ok"]
    assert browser.driver.execute_script("return window.stillTheSamePage") is True
    assert urlsplit(browser.driver.current_url).query == "agent=live-agent&status=completed"
    assert browser.one(".chart-runs .chart-total").text == "1"


def test_a_running_run_changes_without_a_reload(browser, runs_server):
    browser.open(f"{runs_server.http}/?range=24h")
    browser.one('tr[data-run-id="r-kyoto"]')
    browser.wait(lambda: browser.driver.execute_script("return document.body.dataset.live") == "on", "live stream")
    browser.driver.execute_script("window.stillTheSamePage = true")
    send(runs_server, runs_body({"run_id": "r-live-running", "root": False, "ago": timedelta(0)}))
    status = 'tr[data-run-id="r-live-running"] .status'
    assert browser.one(status).text == "running"
    send(runs_server, runs_body({"run_id": "r-live-running", "agent": "finisher", "chat": False, "ago": timedelta(0)}))
    browser.wait(lambda: browser.css(status) and browser.css(status)[0].text == "completed", "the run completed")
    assert browser.one('tr[data-run-id="r-live-running"] td.agent').text == "finisher"
    assert browser.driver.execute_script("return window.stillTheSamePage") is True


def test_agents_whose_runs_are_all_running_have_no_duration_yet(runs_server):
    """A quantile over no finished run is NaN to the engine: a 500 on the page and in the JSON
    (which has no NaN) until the reads said 0."""
    page = fetch(f"{runs_server.http}/agents")
    assert page.status == 200 and "pager" in page.text, page.text[:300]
    stats = fetch(f"{runs_server.http}/api/v1/stats?group_by=agent")
    assert stats.status == 200, stats.text[:300]
    running_only = [row for row in json.loads(stats.text) if row["running"] == row["runs"]]
    assert running_only and all(row["p50_seconds"] == 0 and row["p95_seconds"] == 0 for row in running_only)

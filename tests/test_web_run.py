"""The run page (``/runs/{run_id}``) against a real `tracehouse serve`: over HTTP and in headless
Chromium (skipped where it is not installed)."""

from __future__ import annotations

import html
import json
import re
import signal
import time
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.trace import Status, StatusCode
from otel_helpers import Recorder
from serve_helpers import Server
from test_web import IMG, KEYS, SCRIPT, XSS_INPUT, fetch, send, wait_for_runs

from tracehouse import semconv
from tracehouse.client import Client, NotFound

RUN = "run-page-1"
SUB = "run-page-sub"
LONG = "x" * 6000


def _messages(*items: dict) -> str:
    return json.dumps(list(items))


def planner_run(run_id: str = RUN, *, tenant: str = "") -> bytes:
    return encode_spans(planner_spans(run_id, tenant=tenant)).SerializeToString()


def planner_spans(run_id: str = RUN, *, tenant: str = "") -> list:
    """A run with an LLM call (a chat with a tool call and reasoning), a failed tool, a tool that
    worked, a checkpoint, and a sub-agent run; as the OTel SDK records it."""
    rec = Recorder(service="page-agent")
    common = {semconv.TRACEHOUSE_RUN_ID: run_id, **({semconv.TRACEHOUSE_TENANT: tenant} if tenant else {})}
    root = {
        semconv.GEN_AI_OPERATION_NAME: "invoke_agent",
        semconv.GEN_AI_AGENT_NAME: "planner",
        semconv.TRACEHOUSE_RUN_INPUT: XSS_INPUT,
        semconv.GEN_AI_CONVERSATION_ID: "conv-page",
    }
    with rec.span("invoke_agent planner", **common, **root) as top:
        chat = {
            semconv.GEN_AI_OPERATION_NAME: "chat",
            semconv.GEN_AI_PROVIDER_NAME: "openai",
            semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            semconv.GEN_AI_REQUEST_TEMPERATURE: 0.2,
            semconv.GEN_AI_USAGE_INPUT_TOKENS: 120,
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 30,
            semconv.GEN_AI_SYSTEM_INSTRUCTIONS: json.dumps([{"type": "text", "content": "You plan trips."}]),
            semconv.GEN_AI_INPUT_MESSAGES: _messages(
                {"role": "user", "parts": [{"type": "text", "content": XSS_INPUT}]}
            ),
            semconv.GEN_AI_OUTPUT_MESSAGES: _messages(
                {
                    "role": "assistant",
                    "parts": [
                        {"type": "reasoning", "content": "I should search first."},
                        {"type": "tool_call", "id": "call_1", "name": "search", "arguments": {"q": "kyoto", "n": 3}},
                        {"type": "text", "content": "Let me search. " + LONG},
                    ],
                    "finish_reason": "tool_calls",
                }
            ),
        }
        with rec.span("chat gpt-4o-mini", **common, **chat):
            pass
        tool = {
            semconv.GEN_AI_OPERATION_NAME: "execute_tool",
            semconv.GEN_AI_TOOL_NAME: "search",
            semconv.GEN_AI_TOOL_CALL_ID: "call_1",
            semconv.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"q": "kyoto", "n": 3}),
        }
        try:
            with rec.span("execute_tool search", **common, **tool):
                raise TimeoutError("search took too long")
        except TimeoutError:
            pass
        with rec.span("execute_tool search", **common, **tool, **{semconv.GEN_AI_TOOL_CALL_RESULT: '["Ryokan"]'}) as ok:
            ok.add_event(
                semconv.EVENT_TRACEHOUSE_CHECKPOINT,
                {semconv.TRACEHOUSE_CHECKPOINT_ID: "after-search", semconv.TRACEHOUSE_CHECKPOINT_STATE: '{"found": 1}'},
            )
        sub = {
            semconv.TRACEHOUSE_RUN_ID: SUB if run_id == RUN else f"{run_id}-sub",
            semconv.TRACEHOUSE_PARENT_RUN_ID: run_id,
            semconv.GEN_AI_OPERATION_NAME: "invoke_agent",
            semconv.GEN_AI_AGENT_NAME: "budget-checker",
            **({semconv.TRACEHOUSE_TENANT: tenant} if tenant else {}),
        }
        with rec.span("invoke_agent budget-checker", **sub):
            pass
        top.set_status(Status(StatusCode.OK))
    return list(rec.exporter.get_finished_spans())


def _start(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str) -> Server:
    return Server(str(tmp_path_factory.mktemp(name) / "data"), ("--batch-interval", "0.1", *args)).start()


@pytest.fixture(scope="module")
def run_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = _start(tmp_path_factory, "web-run")
    try:
        send(srv, planner_run())
        send(srv, planner_run("run-page-acme", tenant="acme"))
        wait_for_runs(srv, {RUN, SUB})
        wait_for_runs(srv, {"run-page-acme"}, tenant="acme")
        yield srv
    finally:
        srv.stop(signal.SIGKILL)


def _rows(page: str) -> dict[str, str]:
    return dict(
        re.findall(r'<li class="node [^"]*" data-node-row data-span-id="([0-9a-f]{16})">(.*?)</li>', page, re.S)
    )


def _tree(srv: Server) -> list:
    return Client(srv.http).run_tree(RUN).nodes


# Over HTTP ------------------------------------------------------------------------------------


def test_the_tree_shows_nodes_nested_with_a_failed_tool_and_a_sub_agent_run(run_server):
    page = fetch(f"{run_server.http}/runs/{RUN}")
    assert page.status == 200 and "content-security-policy" in page.headers
    assert " style=" not in page.text and not re.search(r"<script(?![^>]*\bsrc=)", page.text)
    nodes = _tree(run_server)
    assert [(n.type, n.depth) for n in nodes] == [("agent", 0), ("llm", 1), ("tool", 1), ("tool", 1), ("agent", 1)]
    rows = _rows(page.text)
    assert list(rows) == [n.span_id for n in nodes]
    root, llm, failed, ok, sub = nodes
    assert "gpt-4o-mini" in rows[llm.span_id] and "150 tok" in rows[llm.span_id]
    assert 'class="node depth-1 type-tool status-failed' in page.text
    assert "search took too long" in rows[failed.span_id] and failed.status == "failed"
    assert f'href="/runs/{SUB}"' in rows[sub.span_id] and sub.sub_run_id == SUB
    assert 'href="/conversations/conv-page"' in page.text
    # No payload in the tree: the prompt's text is only in the input preview of the summary.
    assert "Let me search" not in page.text and "I should search first" not in page.text
    # The sub-agent run's page links back to its parent.
    child = fetch(f"{run_server.http}/runs/{SUB}")
    assert child.status == 200 and f'class="parent-run" href="/runs/{RUN}"' in child.text
    # A long tree shows its first nodes and a link to more.
    capped = fetch(f"{run_server.http}/runs/{RUN}?shown=2").text
    assert list(_rows(capped)) == [n.span_id for n in nodes[:2]]
    assert f'href="/runs/{RUN}?view=tree&shown=502"' in capped and "3 not shown" in capped
    # The timeline: the same nodes as bars on the run's time axis, widths as SVG attributes.
    timeline = fetch(f"{run_server.http}/runs/{RUN}?view=timeline")
    bars = re.findall(r'<rect class="bar type-(\w+) status-(\w+)" x="([\d.]+)" y="1" width="([\d.]+)"', timeline.text)
    assert [b[:2] for b in bars] == [(n.type, n.status) for n in nodes]
    assert all(0 <= float(x) <= 100 and 0 < float(w) <= 100 for _, _, x, w in bars)


def test_a_node_detail_shows_the_chat_the_error_and_how_the_span_was_read(run_server):
    _, llm, failed, ok, sub = _tree(run_server)
    detail = fetch(f"{run_server.http}/runs/{RUN}/nodes/{llm.span_id}")
    assert detail.status == 200
    text = detail.text
    assert '<li class="msg role-system input">' in text and "You plan trips." in text
    assert '<li class="msg role-user input">' in text and '<li class="msg role-assistant output">' in text
    assert html.escape(XSS_INPUT, quote=False) in text and SCRIPT not in text and IMG not in text
    assert '<details class="reasoning"><summary>Reasoning</summary>' in text and "I should search first." in text
    assert 'calls <strong class="tool-name">search</strong>' in text
    assert "{\n  &#34;q&#34;: &#34;kyoto&#34;,\n  &#34;n&#34;: 3\n}" in text  # arguments as formatted JSON
    assert "tool_calls" in text and "gpt-4o-mini" in text and "temperature" in text and "120 in, 30 out" in text
    assert 'data-convention="otel-genai"' in text and "gen_ai.input.messages" in text
    # A long payload is cut, with a link to all of it.
    assert "show all (" in text and LONG not in text
    assert LONG in fetch(f"{run_server.http}/runs/{RUN}/nodes/{llm.span_id}?full=1").text
    error = fetch(f"{run_server.http}/runs/{RUN}/nodes/{failed.span_id}").text
    assert 'class="error-box"' in error and "TimeoutError" in error and "search took too long" in error
    assert "Exception event at" in error and "Stack trace" in error
    assert "&#34;kyoto&#34;" in error  # the tool's arguments
    result = fetch(f"{run_server.http}/runs/{RUN}/nodes/{ok.span_id}").text
    assert "Ryokan" in result and 'class="error-box"' not in result
    # The whole page with ?node= renders the detail beside the tree.
    page = fetch(f"{run_server.http}/runs/{RUN}?node={llm.span_id}").text
    assert 'id="node-detail" class="detail" data-span-id="' + llm.span_id in page
    assert fetch(f"{run_server.http}/runs/{RUN}/nodes/ffffffffffffffff").status == 404


def test_replay_and_resume(run_server):
    full = fetch(f"{run_server.http}/runs/{RUN}?view=replay").text
    kinds = re.findall(r'<li class="event kind-(\w+)', full)
    assert {"message", "tool_call", "reasoning", "checkpoint"} <= set(kinds)
    transcript = fetch(f"{run_server.http}/runs/{RUN}?view=replay&mode=transcript").text
    assert set(re.findall(r'<li class="event kind-(\w+)', transcript)) == {"message"}
    assert SCRIPT not in full and IMG not in full
    capped = fetch(f"{run_server.http}/runs/{RUN}?view=replay&shown=2").text
    assert len(re.findall(r'<li class="event kind-', capped)) == 2 and "not shown)" in capped
    resume = fetch(f"{run_server.http}/runs/{RUN}?view=resume&until_checkpoint=after-search")
    assert resume.status == 200
    assert 'class="checkpoint-id">after-search<' in resume.text and "&#34;found&#34;: 1" in resume.text
    assert 'data-copy="#resume-json"' in resume.text
    assert f"client.resume(&#39;{RUN}&#39;, until_checkpoint=&#39;after-search&#39;)" in resume.text
    assert f'tracehouse.Client("{run_server.http}")' in resume.text
    whole = fetch(f"{run_server.http}/runs/{RUN}?view=resume").text
    assert "role-user" in whole and "the whole run" in whole
    nothing = fetch(f"{run_server.http}/runs/{RUN}?view=resume&until_node=ffffffffffffffff")
    assert nothing.status == 200 and "has no events" in nothing.text


def test_unknown_and_other_tenants_runs_are_404(run_server):
    for path in ("/runs/no-such-run", "/runs/run-page-acme", "/runs/no-such-run?view=replay"):
        page = fetch(f"{run_server.http}{path}")
        assert page.status == 404 and "Run not found" in page.text, path
    assert fetch(f"{run_server.http}/runs/run-page-acme?tenant=acme").status == 200


def test_the_read_service_and_the_client_agree(run_server):
    client = Client(run_server.http)
    tree = client.run_tree(RUN)
    assert tree.agent == "planner" and tree.conversation_id == "conv-page" and len(tree.nodes) == 5
    detail = client.node(RUN, tree.nodes[1].span_id)
    assert [m.role for m in detail.input_messages] == ["system", "user"]
    assert detail.output_messages[0].parts[1].name == "search" and detail.parameters == {"temperature": "0.2"}
    assert detail.attributes[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    sub = client.node(RUN, tree.nodes[4].span_id)  # a sub-agent run's root, a node of its parent
    assert sub.sub_run_id == SUB and sub.agent == "budget-checker"
    with pytest.raises(NotFound):
        client.node(RUN, "ffffffffffffffff")
    with pytest.raises(NotFound):
        client.run_tree("run-page-acme")  # another tenant's


def test_a_keyed_server_shows_a_run_only_to_its_tenant(tmp_path_factory):
    srv = _start(tmp_path_factory, "web-run-keyed", "--api-keys", KEYS)
    try:
        send(srv, planner_run("run-keyed-acme"), key="k1")
        wait_for_runs(srv, {"run-keyed-acme"}, key="k1")
        away = fetch(f"{srv.http}/runs/run-keyed-acme")
        assert away.status == 303 and away.headers["location"].startswith("/signin")
        mine = fetch(f"{srv.http}/runs/run-keyed-acme?view=resume", headers={"Cookie": "tracehouse_key=k1"})
        assert mine.status == 200 and 'api_key="YOUR_API_KEY"' in mine.text
        theirs = fetch(f"{srv.http}/runs/run-keyed-acme", headers={"Cookie": "tracehouse_key=k2"})
        assert theirs.status == 404 and "run-keyed-acme" in theirs.text and "planner" not in theirs.text
        span = Client(srv.http, api_key="k1").run_tree("run-keyed-acme").nodes[1].span_id
        assert (
            fetch(f"{srv.http}/runs/run-keyed-acme/nodes/{span}", headers={"Cookie": "tracehouse_key=k2"}).status == 404
        )
    finally:
        srv.stop(signal.SIGKILL)


# In Chromium ----------------------------------------------------------------------------------


def test_the_run_page_in_chromium(browser, run_server):
    from selenium.common.exceptions import NoAlertPresentException

    browser.open(f"{run_server.http}/runs/{RUN}")
    assert browser.driver.title == f"Run {RUN} · tracehouse"
    browser.wait(lambda: browser.driver.execute_script("return !!window.htmx"), "htmx")
    browser.wait(lambda: browser.css("#run-nodes [data-node-row]"), "the tree")
    time.sleep(1.5)  # the live stream's first refresh of the tree (debounced) has come and gone
    rows = browser.css("#run-nodes [data-node-row]")
    assert len(rows) == 5
    failed = browser.one("#run-nodes .node.status-failed")
    assert "search took too long" in failed.text
    failed_id = failed.get_attribute("data-span-id")
    assert failed.value_of_css_property("border-left-color") != rows[1].value_of_css_property("border-left-color")
    # Open the LLM call: its messages as a chat, fetched then (the URL says which node).
    rows[1].find_element("css selector", "a.node-link").click()
    browser.wait(lambda: browser.css("#node-detail .chat"), "the chat")
    roles = [m.get_attribute("class").split()[1] for m in browser.css("#node-detail .msg")]
    assert roles == ["role-system", "role-user", "role-assistant"]
    assert browser.text("#node-detail .msg.role-user .text") == XSS_INPUT  # markup is text
    with pytest.raises(NoAlertPresentException):
        browser.driver.switch_to.alert.text  # noqa: B018
    assert (
        browser.driver.execute_script("return document.querySelectorAll('main img, main script[src*=alert]').length")
        == 0
    )
    assert not browser.one("#node-detail details.reasoning").get_attribute("open")
    assert "node=" in browser.driver.current_url
    browser.screenshot("web-run-tree")
    # j / k move between nodes.
    body = browser.one("body")
    body.send_keys("j")
    browser.wait(
        lambda: "error-box" in browser.driver.page_source and browser.css("#node-detail .error-box"), "the error"
    )
    assert "TimeoutError" in browser.text("#node-detail .error-box")
    assert browser.one("#run-nodes .node.selected").get_attribute("data-span-id") == failed_id
    body.send_keys("k")
    browser.wait(lambda: browser.css("#node-detail .chat"), "the chat again")
    # Show all of a long payload.
    browser.one("#node-detail a.show-all").click()
    browser.wait(lambda: "show all" not in browser.text("#node-detail"), "the whole payload")
    # The timeline.
    browser.one('nav.views a[data-view="timeline"]').click()
    bars = browser.wait(lambda: browser.css("#run-nodes svg.tbar rect"), "the timeline")
    assert len(bars) == 5 and float(bars[0].get_attribute("width")) > 90
    assert browser.css("#node-detail .chat")  # the selected node stays open
    browser.screenshot("web-run-timeline")
    # Replay, full and transcript.
    browser.one('nav.views a[data-view="replay"]').click()
    browser.wait(lambda: browser.css("#run-replay .event.kind-checkpoint"), "the replay")
    browser.one('#run-replay .modes a[href$="transcript"]').click()
    browser.wait(lambda: not browser.css("#run-replay .event.kind-checkpoint"), "the transcript")
    assert browser.css("#run-replay .event.kind-message")
    browser.screenshot("web-run-replay")
    # Resume from a checkpoint, and copy it as JSON.
    browser.one('nav.views a[data-view="resume"]').click()
    from selenium.webdriver.support.ui import Select

    Select(browser.one("#until_checkpoint")).select_by_value("after-search")
    browser.one(".resume-pick button").click()
    browser.wait(lambda: browser.css(".checkpoint-id"), "the checkpoint")
    assert browser.text(".checkpoint-id") == "after-search"
    browser.driver.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": run_server.http, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    browser.one('button[data-copy="#resume-json"]').click()
    browser.wait(lambda: browser.driver.execute_script("return document.body.dataset.copied"), "the copy")
    copied = browser.driver.execute_script("return navigator.clipboard.readText()")
    assert json.loads(copied)["checkpoint"]["id"] == "after-search"
    assert "show all" in browser.text("#run-resume .chat")  # the long answer is cut
    browser.driver.execute_script("window.scrollTo(0, 0)")
    browser.screenshot("web-run-resume")


def test_a_running_run_grows_on_the_page_in_chromium(browser, run_server):
    spans = planner_spans("run-page-live")
    first = [s for s in spans if s.name == "chat gpt-4o-mini"]
    send(run_server, encode_spans(first).SerializeToString())  # no root yet: running
    wait_for_runs(run_server, {"run-page-live"})
    browser.open(f"{run_server.http}/runs/run-page-live")
    browser.wait(lambda: browser.css("#run-nodes [data-node-row]"), "the first nodes")
    assert browser.one("#run-summary").get_attribute("data-run-status") == "running"
    before = len(browser.css("#run-nodes [data-node-row]"))
    browser.wait(lambda: browser.driver.execute_script("return document.body.dataset.live") == "on", "live stream")
    browser.driver.execute_script("window.stillTheSamePage = true")
    rest = [s for s in spans if s.name != "chat gpt-4o-mini"]
    send(run_server, encode_spans(rest).SerializeToString())  # the rest, root included
    browser.wait(lambda: len(browser.css("#run-nodes [data-node-row]")) > before, "the new nodes")
    browser.wait(lambda: browser.one("#run-summary").get_attribute("data-run-status") == "success", "the end")
    assert browser.driver.execute_script("return window.stillTheSamePage") is True


LONG_RUN = "run-page-long"
LONG_STEPS, LONG_TOOLS = 60, 19  # 1 + 60 * (1 + 19) = 1,201 nodes: pages of 500, 500 and 201


def long_run() -> bytes:
    """A run of 1,201 nodes: an agent, its steps, and each step's tool calls."""
    rec = Recorder(service="long-agent")
    common = {semconv.TRACEHOUSE_RUN_ID: LONG_RUN}
    with rec.span("invoke_agent long", **common, **{semconv.GEN_AI_OPERATION_NAME: "invoke_agent"}):
        for step in range(LONG_STEPS):
            with rec.span(f"step {step}", **common, **{semconv.TRACEHOUSE_NODE_TYPE: "step"}):
                for tool in range(LONG_TOOLS):
                    attrs = {semconv.GEN_AI_OPERATION_NAME: "execute_tool", semconv.GEN_AI_TOOL_NAME: f"t{tool}"}
                    with rec.span(f"execute_tool t{tool}", **common, **attrs):
                        pass
    return rec.request().SerializeToString()


@pytest.fixture(scope="module")
def long_run_server(run_server: Server) -> Server:
    send(run_server, long_run())
    wait_for_runs(run_server, {LONG_RUN})
    return run_server


def _row_ids(page: str) -> list[str]:
    return re.findall(r'data-node-row data-span-id="([0-9a-f]{16})"', page)


def _more(page: str) -> str:
    found = re.search(r'class="show-more" href="([^"]+)"\s+hx-get="([^"]+)"', page)
    return html.unescape(found.group(2)) if found else ""


def test_a_long_tree_is_paged_and_show_more_fetches_only_the_next_page(long_run_server):
    srv = long_run_server
    tree = Client(srv.http).run_tree(LONG_RUN)  # the API: every node
    assert len(tree.nodes) == tree.node_count == 1 + LONG_STEPS * (1 + LONG_TOOLS) and tree.offset == 0
    every = [n.span_id for n in tree.nodes]
    page = Client(srv.http).run_tree(LONG_RUN, 500, 500)  # the API's pages are the page's
    assert [n.span_id for n in page.nodes] == every[500:1000] and (page.node_count, page.offset) == (1201, 500)
    assert [(n.depth, n.offset_ns) for n in page.nodes] == [(n.depth, n.offset_ns) for n in tree.nodes[500:1000]]
    assert page.extent_ns == tree.extent_ns > 0
    assert [n.span_id for n in Client(srv.http).run_tree(LONG_RUN, 1200).nodes] == every[1200:]
    assert fetch(f"{srv.http}/api/v1/runs/{LONG_RUN}/tree?limit=0").status == 422
    for view in ("tree", "timeline"):
        page = fetch(f"{srv.http}/runs/{LONG_RUN}?view={view}").text
        assert "<dt>Nodes</dt><dd>1201</dd>" in page
        assert _row_ids(page) == every[:500]
        assert "Show 500 more (701 not shown)" in page
        more = _more(page)
        assert more == f"/runs/{LONG_RUN}/rows?view={view}&offset=500"
        second = fetch(srv.http + more)  # a fragment: the next rows, and the link after them
        assert second.status == 200 and "<html" not in second.text and "run-summary" not in second.text
        assert _row_ids(second.text) == every[500:1000]
        assert _more(second.text) == f"/runs/{LONG_RUN}/rows?view={view}&offset=1000"
        last = fetch(srv.http + _more(second.text)).text
        assert _row_ids(last) == every[1000:] and "show-more" not in last
    # The tree's depths and the timeline's bars are those of the whole tree.
    fragment = fetch(f"{srv.http}/runs/{LONG_RUN}/rows?view=tree&offset=500").text
    depths = re.findall(r'<li class="node depth-(\d+) ', fragment)
    assert depths == [str(n.depth) for n in tree.nodes[500:1000]]
    # Without scripts, the link opens the page with more nodes.
    assert _row_ids(fetch(f"{srv.http}/runs/{LONG_RUN}?shown=1000").text) == every[:1000]
    # An unknown run has no rows.
    assert fetch(f"{srv.http}/runs/no-such-run/rows?offset=500").status == 404


def test_show_more_appends_the_next_page_in_chromium(browser, long_run_server):
    browser.open(f"{long_run_server.http}/runs/{LONG_RUN}")
    browser.wait(lambda: browser.driver.execute_script("return !!window.htmx"), "htmx")
    assert len(browser.css("#run-nodes [data-node-row]")) == 500
    browser.driver.execute_script("window.stillTheSamePage = true")
    browser.one("#run-nodes a.show-more").click()
    browser.wait(lambda: len(browser.css("#run-nodes [data-node-row]")) == 1000, "the second page")
    assert "Show 201 more (201 not shown)" in browser.text("#run-nodes .more")
    browser.one("#run-nodes a.show-more").click()
    browser.wait(lambda: len(browser.css("#run-nodes [data-node-row]")) == 1201, "the last page")
    assert not browser.css("#run-nodes a.show-more")
    assert browser.driver.execute_script("return window.stillTheSamePage") is True  # no reload
    ids = browser.driver.execute_script(
        "return Array.from(document.querySelectorAll('#run-nodes [data-node-row]'), r => r.dataset.spanId)"
    )
    assert ids == [n.span_id for n in Client(long_run_server.http).run_tree(LONG_RUN).nodes]
    # A row of the appended pages opens like the others.
    browser.css("#run-nodes [data-node-row]")[1200].find_element("css selector", "a.node-link").click()
    browser.wait(lambda: "execute_tool t18" in browser.text("#node-detail"), "the last node's detail")


def test_which_conventions_a_span_came_in_follows_its_attribute_names():
    from tracehouse.store.reads import conventions

    def names(*attributes: str) -> dict[str, list[str]]:
        return {c.name: c.attributes for c in conventions(list(attributes))}

    assert names(semconv.GEN_AI_OPERATION_NAME, semconv.GEN_AI_INPUT_MESSAGES) == {
        "otel-genai": [semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_OPERATION_NAME]
    }
    pre = names(semconv.GEN_AI_SYSTEM, semconv.GEN_AI_REQUEST_MODEL, semconv.EVENT_GEN_AI_USER_MESSAGE)
    assert pre == {
        "otel-genai-pre-1.37": [semconv.GEN_AI_REQUEST_MODEL, semconv.GEN_AI_SYSTEM, semconv.EVENT_GEN_AI_USER_MESSAGE]
    }
    assert set(names(semconv.OPENINFERENCE_SPAN_KIND, "llm.input_messages.0.message.role")) == {"openinference"}
    assert set(names(semconv.TRACELOOP_SPAN_KIND, "gen_ai.prompt.0.content")) == {"openllmetry", "otel-genai-pre-1.37"}
    assert set(names(semconv.LANGFUSE_OBSERVATION_TYPE, semconv.TRACEHOUSE_RUN_ID)) == {"langfuse", "tracehouse"}
    assert names("http.method", "custom.thing") == {"plain": []}


def test_the_tree_reads_no_payload_column():
    from tracehouse.store import queries, schema

    assert not set(queries._TREE_NODE_COLUMNS) & schema.PAYLOAD_COLUMNS
    assert "SpanAttributes" not in queries._TREE_NODE_COLUMNS

"""The conversation, agent and compare pages, and the compare API, against a real
`tracehouse serve`: over HTTP (every state) and in headless Chromium (skipped without it)."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from serve_helpers import Server
from test_web import KEYS, fetch, wait_for_runs

import tracehouse
from tracehouse.client import Client
from tracehouse.client import NotFound as ClientNotFound
from tracehouse.responses import CompareStep
from tracehouse.store.reads import _align

CONVERSATION = "conv-web-1"
MARKUP = "<script>alert(1)</script>"


def _support_run(question: str, *, model: str, order: int, extra_tool: bool = False, fail: bool = False) -> str:
    """A run of the support agent: a model call asking for a tool, the tool, a model call answering."""
    call = {
        "id": f"call_{order}",
        "type": "function",
        "function": {"name": "lookup_order", "arguments": json.dumps({"id": order})},
    }
    turn = [{"role": "user", "content": question}]
    with tracehouse.run("support", input=question, conversation_id=CONVERSATION) as run:
        with tracehouse.llm_call(model, messages=turn, system="Be kind.") as llm:
            llm.record_response(
                [{"role": "assistant", "content": None, "tool_calls": [call]}],
                finish_reasons=["tool_calls"], input_tokens=30 * order, output_tokens=10,
            )  # fmt: skip
        with tracehouse.tool("lookup_order", {"id": order}, call_id=f"call_{order}") as tool:
            tool.set_result({"status": "delivered", "order": order})
        if extra_tool:
            with tracehouse.tool("refund", {"id": order}) as tool:
                tool.set_result({"refunded": True})
        if fail:
            with pytest.raises(RuntimeError), tracehouse.tool("notify", {"id": order}):
                raise RuntimeError("mail server down")
        history = [*turn, {"role": "assistant", "content": None, "tool_calls": [call]},
                   {"role": "tool", "tool_call_id": f"call_{order}", "content": '{"status": "delivered"}'}]  # fmt: skip
        with tracehouse.llm_call(model, messages=history, system="Be kind.") as llm:
            llm.record_response(f"Order {order} was delivered. {MARKUP}", input_tokens=60, output_tokens=12 * order)
    return run.run_id


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    """No API keys: a two-run conversation of the support agent (the second with another model,
    one more tool and a failing one), and a run of another tenant."""
    srv = Server(str(tmp_path_factory.mktemp("web-more") / "data"), ("--batch-interval", "0.1")).start()
    try:
        config = tracehouse.configure("web-more", endpoint=srv.http, batch=False)
        runs = {
            "first": _support_run("Where is order 1?", model="gpt-4o-mini", order=1),
            "second": _support_run("And order 2?", model="gpt-4o", order=2, extra_tool=True, fail=True),
        }
        config.flush()
        with tracehouse.run("acme-agent", conversation_id="conv-acme", tenant="acme") as theirs:
            pass
        config.flush()
        runs["theirs"] = theirs.run_id
        wait_for_runs(srv, {runs["first"], runs["second"]})
        wait_for_runs(srv, {theirs.run_id}, tenant="acme")
        yield srv, runs
    finally:
        tracehouse.instrument.shutdown()
        srv.stop(signal.SIGKILL)


def _step(kind: str, name: str, output: str = "", model: str = "") -> CompareStep:
    return CompareStep(
        span_id=f"{name}-{output}", type=kind, name=name, status="success", model=model, input="", output=output,
        input_tokens=0, output_tokens=0, cost_usd=0.0, duration_ns=1, duration="0.001s", error_message="",
    )  # fmt: skip


def test_steps_align_on_their_longest_common_sequence():
    a = [_step("llm", "chat gpt-4o", model="gpt-4o"), _step("tool", "search", "x"), _step("tool", "fetch")]
    b = [
        _step("llm", "chat o3", model="o3"),
        _step("tool", "browse"),
        _step("tool", "search", "y"),
        _step("llm", "chat o3"),
    ]
    rows = [(r.change, r.a and r.a.name, r.b and r.b.name, r.differences) for r in _align(a, b)]
    assert rows == [
        ("changed", "chat gpt-4o", "chat o3", ["model"]),  # model calls align by operation
        ("only_b", None, "browse", []),
        ("changed", "search", "search", ["output"]),
        ("only_a", "fetch", None, []),
        ("only_b", None, "chat o3", []),
    ]
    assert [r.change for r in _align(a, a)] == ["same"] * 3 and _align([], []) == []


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_a_conversation_is_one_transcript_of_its_runs(data):
    srv, runs = data
    page = fetch(f"{srv.http}/conversations/{CONVERSATION}")
    assert page.status == 200, page.text
    first, second = (
        page.text.index(f'data-run-id="{runs["first"]}"'),
        page.text.index(f'data-run-id="{runs["second"]}"'),
    )
    assert first < second  # oldest first
    for run_id in (runs["first"], runs["second"]):
        assert f'href="/runs/{run_id}"' in page.text
    text = _text(page.text)
    assert text.index("Where is order 1?") < text.index("lookup_order") < text.index("And order 2?")
    assert "Order 2 was delivered." in text
    assert MARKUP not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert f'href="/compare?a={runs["first"]}&amp;b={runs["second"]}"' in page.text

    assert fetch(f"{srv.http}/conversations/no-such-conversation").status == 404
    assert fetch(f"{srv.http}/conversations/conv-acme").status == 404  # another tenant's
    assert fetch(f"{srv.http}/conversations/conv-acme?tenant=acme").status == 200

    whole = Client(srv.http).conversation_runs(CONVERSATION)
    assert [r.run.run_id for r in whole.runs] == [runs["first"], runs["second"]]
    assert {e.run_id for e in whole.runs[0].events} == {runs["first"]}


def test_an_agent_page_shows_outcomes_charts_nodes_and_models(data):
    srv, runs = data
    page = fetch(f"{srv.http}/agents/support")
    assert page.status == 200, page.text
    text = _text(page.text)
    assert "Runs 2" in text and "Success 100%" in text  # the failing tool did not fail its run
    assert page.text.count("<svg") == 4 and "<rect" in page.text and "<circle" in page.text
    assert "style=" not in page.text
    slowest = page.text[page.text.index('id="slowest-nodes"') :]
    assert "lookup_order" in slowest
    failing = _text(page.text[page.text.index('id="failing-nodes"') : page.text.index('id="models"')])
    assert "notify" in failing and "lookup_order" not in failing
    models = _text(page.text[page.text.index('id="models"') : page.text.index('id="agent-runs"')])
    assert "gpt-4o-mini" in models and "gpt-4o" in models
    for run_id in (runs["first"], runs["second"]):
        assert f'href="/runs/{run_id}"' in page.text
    listing = fetch(f"{srv.http}/agents")
    assert 'href="/agents/support"' in listing.text

    assert fetch(f"{srv.http}/agents/no-such-agent").status == 404
    assert fetch(f"{srv.http}/agents/acme-agent").status == 404  # another tenant's

    overview = Client(srv.http).agent("support")
    assert (overview.runs, overview.completed, overview.failed) == (2, 2, 0)
    assert {m.model for m in overview.models} == {"gpt-4o-mini", "gpt-4o"}
    assert [n.name for n in overview.failing_nodes] == ["execute_tool notify"]
    # The agent filter of usage and node performance.
    client = Client(srv.http)
    assert {row["key"] for row in client.usage(agent="support")} == {"gpt-4o-mini", "gpt-4o"}
    assert client.usage(agent="nobody") == []
    assert {row["name"] for row in client.node_performance(agent="support")} >= {"execute_tool refund"}
    assert client.node_performance(agent="nobody") == []


def test_two_runs_compared_step_by_step(data):
    srv, runs = data
    a, b = runs["first"], runs["second"]
    page = fetch(f"{srv.http}/compare?a={a}&b={b}")
    assert page.status == 200, page.text
    changes = re.findall(r'data-change="(\w+)"', page.text)
    assert changes.count("only_b") == 2  # refund and notify
    assert "only_a" not in changes and "changed" in changes
    assert "B − A: +30 tokens" in page.text  # the first model call: 60+10 against 30+10
    assert f'href="/runs/{a}"' in page.text and f'href="/runs/{b}"' in page.text
    assert MARKUP not in page.text

    comparison = Client(srv.http).compare(a, b)
    assert (comparison.a.run_id, comparison.b.run_id) == (a, b)
    rows = [(r.change, (r.a or r.b).name) for r in comparison.rows]
    assert rows == [
        ("changed", "chat gpt-4o-mini"),  # against "chat gpt-4o": another model, the same step
        ("changed", "execute_tool lookup_order"),
        ("only_b", "execute_tool refund"),
        ("only_b", "execute_tool notify"),
        ("changed", "chat gpt-4o-mini"),
    ]
    tools = [r for r in comparison.rows if r.a and r.a.type == "tool"]
    assert tools and {"input", "output"} <= set(tools[0].differences)  # other arguments, other result
    llm = [r for r in comparison.rows if r.a and r.a.type == "llm"]
    assert len(llm) == 2 and all({"model", "tokens"} <= set(r.differences) for r in llm)
    assert comparison.only_b == 2 and comparison.b.steps == comparison.a.steps + 2

    api = json.loads(fetch(f"{srv.http}/api/v1/compare?a={a}&b={b}").text)
    assert api["only_b"] == 2 and len(api["rows"]) == len(comparison.rows)
    assert fetch(f"{srv.http}/api/v1/compare?a={a}&b=no-such-run").status == 404
    assert fetch(f"{srv.http}/api/v1/compare?a={a}&b={runs['theirs']}").status == 404
    assert fetch(f"{srv.http}/api/v1/compare?a={a}").status == 422
    with pytest.raises(ClientNotFound):
        Client(srv.http).compare(a, "no-such-run")

    assert fetch(f"{srv.http}/compare?a={a}&b=no-such-run").status == 404
    assert fetch(f"{srv.http}/compare?a={a}&b={runs['theirs']}").status == 404  # another tenant's
    form = fetch(f"{srv.http}/compare")
    assert form.status == 200 and '<form class="compare-form"' in form.text


def test_with_api_keys_another_tenants_data_is_not_found(server):
    srv = server("--batch-interval", "0.1", "--api-keys", KEYS)
    config = tracehouse.configure("keyed", endpoint=srv.http, api_key="k1", batch=False)
    with tracehouse.run("acme-bot", conversation_id="conv-k1") as one:
        with tracehouse.tool("search", {"q": "x"}) as tool:
            tool.set_result("found")
    with tracehouse.run("acme-bot", conversation_id="conv-k1") as two:
        pass
    config.flush()
    config = tracehouse.configure("keyed", endpoint=srv.http, api_key="k2", batch=False)
    with tracehouse.run("globex-bot", conversation_id="conv-k2") as theirs:
        pass
    config.flush()
    wait_for_runs(srv, {one.run_id, two.run_id}, key="k1")
    wait_for_runs(srv, {theirs.run_id}, key="k2")
    acme = {"Authorization": "Bearer k1"}
    # Without a key: the sign-in page.
    assert fetch(f"{srv.http}/agents/acme-bot").status == 303
    assert fetch(f"{srv.http}/compare?a={one.run_id}&b={two.run_id}").status == 303
    for path in ("/conversations/conv-k1", "/agents/acme-bot", f"/compare?a={one.run_id}&b={two.run_id}"):
        assert fetch(f"{srv.http}{path}", headers=acme).status == 200, path
    for path in (
        "/conversations/conv-k2",
        "/agents/globex-bot",
        f"/compare?a={one.run_id}&b={theirs.run_id}",
        f"/api/v1/compare?a={one.run_id}&b={theirs.run_id}",
        f"/api/v1/agents/{quote('globex-bot')}/overview",
        "/api/v1/conversations/conv-k2/runs",
    ):
        assert fetch(f"{srv.http}{path}", headers=acme).status == 404, path
    assert Client(srv.http, api_key="k2").compare(theirs.run_id, theirs.run_id).same == 0


# --- in Chromium ----------------------------------------------------------------------------------


def test_comparing_two_runs_in_chromium(browser, data):
    srv, runs = data
    browser.open(f"{srv.http}/compare")
    browser.one("#a").send_keys(runs["first"])
    browser.one("#b").send_keys(runs["second"] + "\n")
    browser.one("#compare-steps")
    assert browser.driver.title == "Compare runs · tracehouse"
    assert [row.get_attribute("data-change") for row in browser.css("#compare-steps tbody tr")] == [
        "changed", "changed", "only_b", "only_b", "changed",
    ]  # fmt: skip
    assert "2 only in B" in browser.text("#compare-summary")
    assert browser.one("#tokens-delta").text.startswith("+")
    # What differs is open; markup in an answer is text, and ran nothing.
    opened = browser.css("#compare-steps details.diff[open] pre")
    assert opened and any(MARKUP in pre.text for pre in opened)
    assert browser.driver.execute_script("return document.querySelectorAll('main script').length") == 0
    browser.screenshot("web-compare")
    browser.one(f'#compare-totals a[href="/runs/{runs["second"]}"]')


def test_an_agent_page_in_chromium(browser, data):
    srv, runs = data
    browser.open(f"{srv.http}/agents")
    browser.one('a[href="/agents/support"]').click()
    browser.wait(lambda: browser.driver.title == "Agent support · tracehouse", "the agent page")
    assert len(browser.css(".chart svg")) == 4
    bars = browser.css(".chart rect")
    assert bars and all(float(bar.get_attribute("height")) > 0 for bar in bars)
    # The stylesheet colours the charts (no style attributes: the CSP would refuse them).
    assert browser.one(".chart rect.s-completed").value_of_css_property("fill") not in ("", "none", "rgb(0, 0, 0)")
    assert "execute_tool notify" in browser.text("#failing-nodes")
    assert "gpt-4o-mini" in browser.text("#models")
    # Start times in the viewer's time zone (not UTC in these tests), UTC on hover.
    started = browser.one("#agent-runs time")
    assert started.get_attribute("title").endswith(" UTC")
    assert browser.wait(lambda: started.text != started.get_attribute("title")[:19], "a local start time")
    browser.screenshot("web-agent")
    browser.one(f'#agent-runs a[href="/runs/{runs["first"]}"]')


def test_a_conversation_in_chromium(browser, data):
    srv, runs = data
    browser.open(f"{srv.http}/conversations/{CONVERSATION}")
    turns = browser.wait(lambda: browser.css("article.turn"), "the runs of the conversation")
    assert [t.get_attribute("data-run-id") for t in turns] == [runs["first"], runs["second"]]
    user = browser.one(".msg.role-user")
    assert user.text.endswith("Where is order 1?")
    assistant = browser.css(".msg.role-assistant .bubble")
    assert any(MARKUP in a.text for a in assistant)
    assert browser.driver.execute_script("return document.querySelectorAll('main script').length") == 0
    # The user's messages sit on the right, the assistant's on the left.
    assert user.location["x"] > browser.css(".msg.role-assistant")[0].location["x"]
    assert browser.one(".msg.tool-call").text.count("lookup_order") >= 1
    started = browser.one("article.turn time")
    assert started.get_attribute("title").endswith(" UTC")
    assert browser.wait(lambda: started.text != started.get_attribute("title")[:19], "a local start time")
    browser.screenshot("web-conversation")
    browser.one(f'article.turn a[href="/runs/{runs["second"]}"]')

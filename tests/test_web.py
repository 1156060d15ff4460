"""The web page, against a real `tracehouse serve`: over plain HTTP (every state, always) and in
a real headless Chromium (skipped where Chromium is not installed; see browser_helpers.py)."""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.trace import Status, StatusCode
from otel_helpers import Recorder
from serve_helpers import Server, unused_port
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tracehouse import semconv
from tracehouse.web.security import CONTENT_SECURITY_POLICY

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
XSS_INPUT = f"Summarize {SCRIPT} and {IMG} for me"
XSS_AGENT = "<img src=y onerror=alert(2)>"
KEYS = "k1:acme,k2:globex"


@dataclass
class Reply:
    status: int
    headers: Message
    text: str

    @property
    def cookies(self) -> list[str]:
        return self.headers.get_all("set-cookie") or []


def fetch(url: str, method: str = "GET", form: dict | None = None, headers: dict | None = None) -> Reply:
    """One request, redirects not followed."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    body = urlencode(form).encode() if form is not None else None
    sent = dict(headers or {})
    if form is not None:
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=sent)
    response = conn.getresponse()
    reply = Reply(response.status, response.headers, response.read().decode())
    conn.close()
    return reply


def agent_run(
    run_id: str, *, agent: str = "planner", question: str = "", tenant: str = "", fail: bool = False
) -> bytes:
    """A small run as the OTel SDK records it, as an OTLP/protobuf body."""
    rec = Recorder(service="web-agent")
    common = {semconv.TRACEHOUSE_RUN_ID: run_id, **({semconv.TRACEHOUSE_TENANT: tenant} if tenant else {})}
    root = {
        semconv.GEN_AI_OPERATION_NAME: "invoke_agent",
        semconv.GEN_AI_AGENT_NAME: agent,
        semconv.TRACEHOUSE_RUN_INPUT: question or f"question {run_id}",
    }
    with rec.span(f"invoke_agent {agent}", **common, **root) as span:
        chat = {
            semconv.GEN_AI_OPERATION_NAME: "chat",
            semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            semconv.GEN_AI_USAGE_INPUT_TOKENS: 120,
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 30,
        }
        with rec.span("chat gpt-4o-mini", **common, **chat):
            pass
        if fail:
            span.set_status(Status(StatusCode.ERROR, "boom"))
    return encode_spans(rec.exporter.get_finished_spans()).SerializeToString()


def send(srv: Server, body: bytes, key: str = "") -> None:
    headers = {"Content-Type": "application/x-protobuf", **({"Authorization": f"Bearer {key}"} if key else {})}
    parts = urlsplit(srv.http)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("POST", "/v1/traces", body=body, headers=headers)
    assert conn.getresponse().status == 200
    conn.close()


def wait_for_runs(srv: Server, run_ids: set[str], *, key: str = "", tenant: str = "") -> None:
    """Until the server has stored every run (its root span included)."""
    query = urlencode({"limit": 1000, **({"tenant": tenant} if tenant else {})})
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        items = json.loads(fetch(f"{srv.http}/api/v1/agents/history?{query}", headers=headers).text)
        done = {item["run_id"] for item in items}
        if run_ids <= done:
            return
        time.sleep(0.2)
    raise AssertionError(f"runs {run_ids} never showed up")


def _start(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str) -> Server:
    return Server(str(tmp_path_factory.mktemp(name) / "data"), ("--batch-interval", "0.1", *args)).start()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """No API keys: two runs and one full of markup in the default tenant, one in acme."""
    srv = _start(tmp_path_factory, "web-open")
    try:
        send(srv, agent_run("run-web-ok"))
        send(srv, agent_run("run-web-failed", fail=True))
        send(srv, agent_run("run-web-markup", agent=XSS_AGENT, question=XSS_INPUT))
        send(srv, agent_run("run-web-acme", tenant="acme"))
        wait_for_runs(srv, {"run-web-ok", "run-web-failed", "run-web-markup"})
        wait_for_runs(srv, {"run-web-acme"}, tenant="acme")
        yield srv
    finally:
        srv.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """API keys k1 (tenant acme) and k2 (globex), a run each."""
    srv = _start(tmp_path_factory, "web-keyed", "--api-keys", KEYS)
    try:
        send(srv, agent_run("run-acme-1"), key="k1")
        send(srv, agent_run("run-globex-1"), key="k2")
        wait_for_runs(srv, {"run-acme-1"}, key="k1")
        wait_for_runs(srv, {"run-globex-1"}, key="k2")
        yield srv
    finally:
        srv.stop(signal.SIGKILL)


def assert_safe_headers(reply: Reply) -> None:
    assert reply.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self' ws: wss:",
        "frame-ancestors 'none'",
    ):
        assert directive in CONTENT_SECURITY_POLICY
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["referrer-policy"] == "same-origin"


def cookie_named(reply: Reply, name: str) -> str:
    found = [c for c in reply.cookies if c.startswith(f"{name}=")]
    assert len(found) == 1, reply.cookies
    return found[0]


# Over HTTP ------------------------------------------------------------------------------------


def test_an_empty_store_says_what_to_do_and_the_assets_come_from_the_package(server):
    srv = server()
    page = fetch(f"{srv.http}/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert_safe_headers(page)
    assert "No runs yet" in page.text and "<table" not in page.text
    assert f"OTEL_EXPORTER_OTLP_ENDPOINT={srv.http}" in page.text and "tracehouse demo" in page.text
    agents = fetch(f"{srv.http}/agents")
    assert agents.status == 200 and "No runs yet" in agents.text
    # Everything the page loads is a path on this server: no other host, no inline script or style.
    assets = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text) and " style=" not in page.text
    assert "<style" not in page.text
    for path, kind in (
        ("/static/vendor/htmx.min.js", "javascript"),
        ("/static/app.js", "javascript"),
        ("/static/style.css", "text/css"),
        ("/favicon.ico", "image/svg+xml"),
    ):
        asset = fetch(f"{srv.http}{path}")
        assert asset.status == 200 and kind in asset.headers["content-type"], (path, asset.headers)
        assert asset.headers["x-content-type-options"] == "nosniff"
    # FastAPI's own API docs load their scripts from elsewhere: they are left without the policy.
    docs = fetch(f"{srv.http}/docs")
    assert docs.status == 200 and "content-security-policy" not in docs.headers
    assert fetch(f"{srv.http}/healthz").headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    # Every asset of the package: no address of another host to load anything from.
    web = ROOT / "src" / "tracehouse" / "web"
    for file in [*web.glob("templates/*.html"), *web.glob("static/**/*.js"), *web.glob("static/**/*.css")]:
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", file.read_text()), file


def test_runs_are_listed_and_markup_in_them_is_only_text(open_server):
    page = fetch(f"{open_server.http}/")
    assert page.status == 200
    assert_safe_headers(page)
    rows = dict(re.findall(r'<tr data-run-id="([^"]+)">(.*?)</tr>', page.text, re.DOTALL))
    assert {"run-web-ok", "run-web-failed", "run-web-markup"} <= set(rows)
    assert "run-web-acme" not in rows  # another tenant's
    ok = rows["run-web-ok"]
    assert "planner" in ok and "status-completed" in ok and ">150<" in ok and "question run-web-ok" in ok
    assert "status-failed" in rows["run-web-failed"]
    started = re.search(r'data-utc="(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)" title="([^"]+ UTC)"', ok)
    assert started and started.group(2) == datetime.fromisoformat(started.group(1)).strftime("%Y-%m-%d %H:%M:%S UTC")
    markup = rows["run-web-markup"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup and "&lt;img src=x onerror=alert(1)&gt;" in markup
    assert "&lt;img src=y onerror=alert(2)&gt;" in markup  # the agent's name
    assert SCRIPT not in page.text and "<img" not in page.text
    agents = fetch(f"{open_server.http}/agents").text
    assert "planner" in agents and "&lt;img src=y onerror=alert(2)&gt;" in agents and "<img" not in agents


def test_without_keys_a_tenant_is_picked_and_remembered(open_server):
    picked = fetch(f"{open_server.http}/?tenant=acme")
    assert "run-web-acme" in picked.text and "run-web-ok" not in picked.text
    cookie = cookie_named(picked, "tracehouse_tenant")
    assert cookie.startswith("tracehouse_tenant=acme;") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert re.search(r'<option value="acme" selected>acme</option>', picked.text)
    assert '<option value="default">default</option>' in picked.text
    again = fetch(f"{open_server.http}/", headers={"Cookie": "tracehouse_tenant=acme"})
    assert "run-web-acme" in again.text and not again.cookies
    nobody = fetch(f"{open_server.http}/?tenant=nobody")
    assert "No runs yet for tenant nobody" in nobody.text
    # No keys: there is nothing to sign in to, and a key cookie changes nothing.
    assert fetch(f"{open_server.http}/signin").status == 303
    assert "run-web-ok" in fetch(f"{open_server.http}/", headers={"Cookie": "tracehouse_key=whatever"}).text


def test_with_api_keys_nothing_shows_without_signing_in(keyed_server):
    base = keyed_server.http
    for path in ("/", "/agents", "/?tenant=globex"):
        away = fetch(f"{base}{path}")
        assert away.status == 303 and away.headers["location"].startswith("/signin?next=%2F"), path
        assert "run-" not in away.text
    assert_safe_headers(away)
    form = fetch(f"{base}/signin?next=/agents")
    assert form.status == 200 and 'name="key"' in form.text and 'value="/agents"' in form.text
    assert "run-acme-1" not in form.text and "Runs</a>" not in form.text
    wrong = fetch(f"{base}/signin", "POST", {"key": "nope", "next": "/"})
    assert wrong.status == 401 and "not valid" in wrong.text and not wrong.cookies and "run-" not in wrong.text
    foreign = fetch(f"{base}/signin", "POST", {"key": "k1"}, {"Origin": "http://elsewhere.example"})
    assert foreign.status == 403 and not foreign.cookies
    signed = fetch(f"{base}/signin", "POST", {"key": "k1", "next": "/agents"}, {"Origin": base})
    assert signed.status == 303 and signed.headers["location"] == "/agents"
    cookie = cookie_named(signed, "tracehouse_key")
    assert cookie.startswith("tracehouse_key=k1;")
    assert all(flag in cookie for flag in ("HttpOnly", "SameSite=strict", "Path=/"))
    assert "Secure" not in cookie  # plain HTTP here; over HTTPS it is Secure
    # Only a path on this server is a place to go back to.
    offsite = fetch(f"{base}/signin", "POST", {"key": "k1", "next": "//elsewhere.example/x"})
    assert offsite.headers["location"] == "/"
    runs = fetch(f"{base}/", headers={"Cookie": "tracehouse_key=k1"})
    assert runs.status == 200 and "run-acme-1" in runs.text and "run-globex-1" not in runs.text
    assert "tenant <strong>acme</strong>" in runs.text and "tenant-picker" not in runs.text
    assert "run-globex-1" in fetch(f"{base}/?tenant=acme", headers={"Cookie": "tracehouse_key=k2"}).text
    stale = fetch(f"{base}/", headers={"Cookie": "tracehouse_key=revoked"})
    assert stale.status == 303 and stale.headers["location"].startswith("/signin")
    assert cookie_named(stale, "tracehouse_key").startswith('tracehouse_key="";')  # forgotten
    out = fetch(f"{base}/signout", "POST", headers={"Cookie": "tracehouse_key=k1", "Origin": base})
    assert out.status == 303 and out.headers["location"] == "/signin"
    assert cookie_named(out, "tracehouse_key").startswith('tracehouse_key="";')


def test_the_api_and_the_live_stream_accept_the_sign_in_cookie(keyed_server):
    base = keyed_server.http
    history = f"{base}/api/v1/agents/history"

    def run_ids(headers: dict) -> set[str]:
        reply = fetch(history, headers=headers)
        assert reply.status == 200, reply.text
        return {item["run_id"] for item in json.loads(reply.text)}

    assert run_ids({"Cookie": "tracehouse_key=k1"}) == {"run-acme-1"}
    assert run_ids({"Cookie": "tracehouse_key=k2"}) == {"run-globex-1"}
    # A key sent as a header decides, whatever the cookie says.
    assert run_ids({"Cookie": "tracehouse_key=k1", "Authorization": "Bearer k2"}) == {"run-globex-1"}
    assert run_ids({"Cookie": "tracehouse_key=k1", "x-api-key": "k2"}) == {"run-globex-1"}
    # A wrong cookie is refused like a wrong key; so is a wrong header beside a right cookie.
    for headers in ({"Cookie": "tracehouse_key=nope"}, {"x-api-key": "nope"}, {}):
        assert fetch(history, headers=headers).status == 401, headers
    assert fetch(history, headers={"Cookie": "tracehouse_key=k1", "Authorization": "Bearer nope"}).status == 401
    # A change signed by the cookie must come from the page's own origin.
    delete = f"{base}/api/v1/runs/run-none"
    assert fetch(delete, "DELETE", headers={"Cookie": "tracehouse_key=k1", "Origin": base}).status == 404
    assert fetch(delete, "DELETE", headers={"Cookie": "tracehouse_key=k1"}).status == 404
    foreign = {"Cookie": "tracehouse_key=k1", "Origin": "http://elsewhere.example"}
    assert fetch(delete, "DELETE", headers=foreign).status == 403
    assert fetch(delete, "DELETE", headers={**foreign, "Cookie": "", "x-api-key": "k1"}).status == 404  # a key
    assert fetch(f"{base}/api/v1/runs/run-acme-1/events", headers=foreign).status == 200  # a read

    ws = base.replace("http://", "ws://") + "/ws/events"
    with connect(ws, additional_headers={"Cookie": "tracehouse_key=k1", "Origin": base}, open_timeout=30) as live:
        send(keyed_server, agent_run("run-acme-live"), key="k1")
        send(keyed_server, agent_run("run-globex-live"), key="k2")
        seen = set()
        while "run-acme-live" not in seen:
            seen.add(json.loads(live.recv(timeout=60))["run_id"])
        assert "run-globex-live" not in seen and "run-globex-1" not in seen
    for headers in (
        {"Cookie": "tracehouse_key=nope", "Origin": base},
        {"Cookie": "tracehouse_key=k1", "Origin": "http://elsewhere.example"},
        {"Origin": base},
    ):
        with pytest.raises(InvalidStatus) as refused:
            connect(ws, additional_headers=headers, open_timeout=30)
        assert refused.value.response.status_code == 403, headers


def test_a_store_that_cannot_be_reached_is_said_plainly(tmp_path):
    store = f"http://127.0.0.1:{unused_port()}/tracehouse"
    srv = Server(str(tmp_path / "unused"), ("--spool", str(tmp_path / "spool")), store=store).start()
    try:
        for path in ("/", "/agents"):
            page = fetch(f"{srv.http}{path}")
            assert page.status == 503 and "Store unavailable" in page.text, path
            assert_safe_headers(page)
    finally:
        srv.stop(signal.SIGKILL)


# In Chromium ----------------------------------------------------------------------------------


def test_the_runs_page_in_chromium(browser, open_server):
    browser.open(f"{open_server.http}/")
    browser.one('tr[data-run-id="run-web-ok"]')
    assert browser.driver.title == "Runs · tracehouse"
    # Times in the viewer's zone (the test's is UTC+05:30), UTC in the tooltip.
    cell = browser.one('tr[data-run-id="run-web-ok"] time')
    utc = datetime.strptime(cell.get_attribute("title"), "%Y-%m-%d %H:%M:%S UTC")
    assert browser.wait(lambda: cell.text != cell.get_attribute("title"), "local times")
    assert cell.text == (utc + timedelta(hours=5, minutes=30)).strftime("%Y-%m-%d %H:%M:%S")
    assert browser.one('tr[data-run-id="run-web-failed"] .status').text == "failed"
    # The stylesheet is applied (no CSP refusal): the header is a flex row.
    assert browser.one("header.top").value_of_css_property("display") == "flex"
    # Light or dark, as the system prefers.
    light = browser.one("body").value_of_css_property("background-color")
    browser.color_scheme("dark")
    dark = browser.one("body").value_of_css_property("background-color")
    assert (light, dark) == ("rgba(255, 255, 255, 1)", "rgba(21, 24, 28, 1)")
    browser.color_scheme("light")
    browser.wait(lambda: browser.driver.execute_script("return document.body.dataset.live") == "on", "live stream")
    # The tenant picker switches without a button (the script submits it).
    assert not browser.one(".tenant-picker button").is_displayed()
    from selenium.webdriver.support.ui import Select

    Select(browser.one("#tenant")).select_by_value("acme")
    browser.one('tr[data-run-id="run-web-acme"]')
    assert not browser.css('tr[data-run-id="run-web-ok"]')
    browser.one('nav a[href="/agents"]').click()
    browser.wait(lambda: browser.driver.title == "Agents · tracehouse", "the agents page")
    assert "planner" in browser.text("#agents") and browser.one('nav a[aria-current="page"]').text == "Agents"


def test_markup_in_a_run_stays_text_in_chromium(browser, open_server):
    from selenium.common.exceptions import NoAlertPresentException

    for path in ("/", "/agents"):
        browser.open(f"{open_server.http}{path}")
        browser.one("table")
        with pytest.raises(NoAlertPresentException):
            browser.driver.switch_to.alert.text  # noqa: B018
        counts = browser.driver.execute_script(
            "return [document.querySelectorAll('main img, main script').length,"
            " document.querySelectorAll('script').length]"
        )
        assert counts == [0, 2]  # only the page's own two scripts, in the head
    browser.open(f"{open_server.http}/")
    row = browser.one('tr[data-run-id="run-web-markup"]')
    assert row.find_element("css selector", "td.preview").text == XSS_INPUT
    assert row.find_element("css selector", "td.agent").text == XSS_AGENT


def test_signing_in_with_a_key_in_chromium(browser, keyed_server):
    base = keyed_server.http
    browser.open(f"{base}/")
    assert urlsplit(browser.driver.current_url).path == "/signin"
    assert "run-acme-1" not in browser.driver.page_source
    browser.allow_console("status of 401")  # the wrong key below
    browser.one("#key").send_keys("wrong\n")
    assert "not valid" in browser.text(".error")
    browser.one("#key").send_keys("k1\n")
    browser.one('tr[data-run-id="run-acme-1"]')
    assert urlsplit(browser.driver.current_url).path == "/"
    assert not browser.css('tr[data-run-id="run-globex-1"]')
    assert "tracehouse_key" not in browser.driver.execute_script("return document.cookie")  # HttpOnly
    # Live: a run stored now appears without a reload (the WebSocket signed in by the cookie).
    browser.wait(lambda: browser.driver.execute_script("return document.body.dataset.live") == "on", "live stream")
    browser.driver.execute_script("window.stillTheSamePage = true")
    send(keyed_server, agent_run("run-acme-browser"), key="k1")
    send(keyed_server, agent_run("run-globex-browser"), key="k2")
    browser.one('tr[data-run-id="run-acme-browser"]')
    assert browser.driver.execute_script("return window.stillTheSamePage") is True
    assert not browser.css('tr[data-run-id="run-globex-browser"]')
    browser.one("form[action='/signout'] button").click()
    browser.wait(lambda: urlsplit(browser.driver.current_url).path == "/signin", "the sign-in page")
    browser.open(f"{base}/agents")
    assert urlsplit(browser.driver.current_url).path == "/signin"


def test_the_demo_ends_on_a_page_full_of_sample_runs(browser, tmp_path):
    command = [sys.executable, "-m", "tracehouse.cli", "demo", "--runs", "12", "--http-port", "0", "--grpc-port", "0"]
    demo = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output = []
        for line in demo.stdout:
            output.append(line)
            found = re.match(r"open (http://127\.0\.0\.1:\d+)/ ", line)
            if found:
                break
        else:
            raise AssertionError("the demo did not serve:\n" + "".join(output))
        browser.open(f"{found.group(1)}/")
        rows = browser.wait(lambda: browser.css("tr[data-run-id]"), "the sample runs")
        assert len(rows) == 12
        assert {"trip-planner", "support-bot"} >= {r.find_element("css selector", "td.agent").text for r in rows}
        browser.screenshot("web-runs")
    finally:
        browser.open("about:blank")  # a page left open would try to reconnect to the stopped server
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, rest
    assert "everything acknowledged is stored" in rest

"""The Prometheus alerting rules (dashboards/alerts/) and their runbook, with the real Prometheus.

``promtool`` checks the rules and runs their unit tests, which fire and do not fire each alert
on series shaped like a receiver's metrics. End to end, a real Prometheus scrapes real
``tracehouse serve`` processes every second and evaluates a copy of the rules whose durations
are scaled from minutes to seconds; the test makes the conditions happen, finds the alerts
firing through Prometheus's HTTP API and clearing after recovery, and runs the ingest-health
dashboard's Prometheus queries on what was scraped.

Without ``promtool`` and ``prometheus`` (Debian: ``apt-get install prometheus``) these tests skip.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from serve_helpers import Server, unused_port
from test_serve import PROTOBUF, agent_run, post

from tracehouse.cli import build_parser
from tracehouse.ingest.metrics import Metrics
from tracehouse.ingest.spool import KIND_TRACES, Spool

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "dashboards" / "alerts"
RULES = ALERTS / "tracehouse.rules.yaml"
RULE_TESTS = ALERTS / "tracehouse.rules.test.yaml"
RUNBOOK = ROOT / "docs" / "runbook.md"
INGEST_DASHBOARD = ROOT / "dashboards" / "tracehouse" / "ingest-health.json"

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus)"
)
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None,
    reason="prometheus is not installed (Debian: apt-get install prometheus)",
)

DAY = 86_400 * 10**9
SCALE = 60  # the end-to-end copy of the rules: a minute of the real rules is a second


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


# --- static checks --------------------------------------------------------------------------------


@needs_promtool
def test_promtool_checks_the_rules():
    done = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout


@needs_promtool
def test_promtool_unit_tests_fire_and_do_not_fire_each_alert():
    done = subprocess.run(
        [PROMTOOL, "test", "rules", RULE_TESTS.name], cwd=ALERTS, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Every alert has a case where it fires and one where it does not.
    fired, quiet = set(), set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert fired == names and quiet == names, (names - fired, names - quiet)


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.M):
        out.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return out


def test_each_alert_says_what_to_do_and_links_its_runbook_section():
    anchors = _anchors(RUNBOOK.read_text())
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    assert {"TracehouseDown", "TracehouseStoreUnreachable", "TracehouseRecordsQuarantined", "TracehouseSpoolFilling",
            "TracehouseBackpressure", "TracehouseIngestLagHigh", "TracehouseItemsRejected",
            "TracehouseAcknowledgedNotStored"} <= set(names)  # fmt: skip
    for rule in rules():
        notes = rule["annotations"]
        assert set(notes) == {"summary", "description", "runbook_url"}, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        page, _, anchor = notes["runbook_url"].partition("#")
        assert page == "docs/runbook.md" and anchor == rule["alert"].lower() and anchor in anchors, rule["alert"]


def test_the_rules_name_the_receivers_metrics():
    families = {"up"}
    for family in Metrics().registry.collect():
        suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}[family.type]
        families |= {family.name + suffix for suffix in suffixes}
    for rule in rules():
        for name in re.findall(r"\b(?:tracehouse_\w+|up)(?=\s*[{\[])", rule["expr"]):
            assert name in families, (rule["alert"], name)


def test_the_runbook_documents_only_commands_that_exist():
    text = RUNBOOK.read_text()
    parser = build_parser()
    commands = [
        line.split("#")[0].strip()
        for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, re.S)
        for line in block.splitlines()
        if line.strip().startswith("tracehouse ")
    ]
    commands += re.findall(r"(?<!`)`(tracehouse [^`]+)`", text)  # inline ones too
    assert len(commands) >= 10
    for command in commands:
        try:
            parser.parse_args(shlex.split(command)[1:])
        except SystemExit:
            pytest.fail(f"the runbook shows a command the CLI refuses: {command}")
    # Every alert has its section.
    for rule in rules():
        assert f"## {rule['alert']}" in text


# --- end to end -----------------------------------------------------------------------------------


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


def _scaled(duration: str) -> str:
    return f"{max(1, round(_seconds(duration) / SCALE))}s"


def scaled_rules(text: str) -> str:
    """The rules with every duration (for:, range selectors, offsets) divided by SCALE."""
    doc = yaml.safe_load(text)
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = _scaled(rule["for"])
            expr = re.sub(r"\[(\w+)\]", lambda m: f"[{_scaled(m.group(1))}]", rule["expr"])
            rule["expr"] = re.sub(r"\boffset (\w+)", lambda m: f"offset {_scaled(m.group(1))}", expr)
    return yaml.safe_dump(doc, sort_keys=False)


def test_the_scaled_copy_differs_from_the_rules_in_durations_only():
    real, scaled = rules(), yaml.safe_load(scaled_rules(RULES.read_text()))["groups"][0]["rules"]
    assert [r["alert"] for r in real] == [r["alert"] for r in scaled]
    by_name = {r["alert"]: r for r in scaled}
    assert by_name["TracehouseDown"]["for"] == "2s"
    assert "[10s] offset 5s" in by_name["TracehouseAcknowledgedNotStored"]["expr"]
    for a, b in zip(real, scaled, strict=True):
        strip = r"\[\w+\]|offset \w+"
        assert re.sub(strip, "", a["expr"]) == re.sub(strip, "", b["expr"]) and a["annotations"] == b["annotations"]


class Prometheus:
    def __init__(self, directory: Path, targets: list[str], rule_file: Path):
        self.port = unused_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rule_file)],
            "scrape_configs": [{"job_name": "tracehouse", "static_configs": [{"targets": targets}]}],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(directory / "prometheus.log", "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, Path(self.log.name).read_text()
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            time.sleep(0.2)
        raise AssertionError("prometheus did not become ready")

    def api(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def firing(self) -> set[tuple[str, str]]:
        return {
            (a["labels"]["alertname"], a["labels"].get("instance", ""))
            for a in self.api("alerts")["alerts"]
            if a["state"] == "firing"
        }

    def value(self, query: str) -> float | None:
        result = self.api("query", query=query)["result"]
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


def _wait(condition, timeout: float, what, tick=None, step: float = 0.25):
    """Call ``tick`` and check ``condition`` until it holds; ``what()`` says what was seen."""
    deadline = time.monotonic() + timeout
    while True:
        if tick:
            tick()
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what()}")
        time.sleep(step)


def _spans(*starts: int, attribute: str = "") -> bytes:
    """A request with one span per start time (fresh ids each time)."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for start in starts:
        _spans.counter += 1
        n = _spans.counter
        span = spans.add(trace_id=n.to_bytes(16, "big"), span_id=n.to_bytes(8, "big"), name="e2e")
        span.start_time_unix_nano, span.end_time_unix_nano = start, start + 1000
        if attribute:
            span.attributes.add(key="payload").value.string_value = attribute
    return request.SerializeToString()


_spans.counter = 0


def _log_record() -> bytes:
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.time_unix_nano = time.time_ns()
    record.body.string_value = "an agent's log line"
    return request.SerializeToString()


def _get(url: str) -> list | dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _delete(url: str) -> int:
    with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10) as response:
        return response.status


@needs_prometheus
def test_alerts_fire_and_clear_in_a_real_prometheus_scraping_real_receivers(tmp_path):
    """Receiver A: a junk request in its spool at start (quarantined) and a client with a wrong
    clock. Receiver B: its ClickHouse server is down and its spool is 1 MB, so it fills and
    turns clients away. Then: A's quarantine is emptied and the client stops; B is stopped
    (down) and started again on a store it can reach, on the same port, and drains its spool."""
    rule_file = tmp_path / "tracehouse.rules.yaml"
    rule_file.write_text(scaled_rules(RULES.read_text()))
    port_a, port_b = unused_port(), unused_port()
    a_instance, b_instance = f"127.0.0.1:{port_a}", f"127.0.0.1:{port_b}"
    spool_b = str(tmp_path / "b-spool")
    store_a = str(tmp_path / "a")
    # What A's writer finds in its spool at start: a good run and a request no store can read.
    good_run = encode_spans(agent_run("run-before-junk"))
    spool = Spool(store_a + "-spool")
    spool.append(KIND_TRACES, "", good_run.SerializeToString())
    spool.append(KIND_TRACES, "", b"\x0a\xff\xff\xff\x0fnot an export request")
    spool.close()
    prewritten_spans = sum(len(ss.spans) for rs in good_run.resource_spans for ss in rs.scope_spans)

    with contextlib.ExitStack() as stack:
        started = time.monotonic()
        a = Server(store_a, ("--http-port", str(port_a)))
        stack.callback(a.stop, signal.SIGKILL)
        a.start()
        dead = unused_port()  # a ClickHouse server DSN nothing answers
        b = Server(
            str(tmp_path / "unused"),
            ("--http-port", str(port_b), "--spool", spool_b, "--spool-max-mb", "1"),
            store=f"http://127.0.0.1:{dead}/tracehouse",
        )
        stack.callback(b.stop, signal.SIGKILL)
        b.start()
        prometheus = Prometheus(tmp_path, [a_instance, b_instance], rule_file)
        stack.callback(prometheus.stop)
        prometheus.wait_ready()
        _wait(
            lambda: prometheus.value('sum(up{job="tracehouse"})') == 2,
            20,
            lambda: prometheus.api("targets")["activeTargets"],
        )

        # The conditions: a client whose clock is 10 days ahead sends to A beside good spans;
        # clients send to B, whose store is down, until its 1 MB spool is full and beyond.
        assert post(f"{a.http}/v1/logs", _log_record(), PROTOBUF)[0] == 200
        payload = "x" * 100_000
        b_statuses = []

        def traffic():
            now = time.time_ns()
            assert post(f"{a.http}/v1/traces", _spans(now, now + 10 * DAY), PROTOBUF)[0] == 200
            b_statuses.append(post(f"{b.http}/v1/traces", _spans(now, attribute=payload), PROTOBUF)[0])

        expected = {
            ("TracehouseRecordsQuarantined", a_instance),
            ("TracehouseItemsRejected", a_instance),
            ("TracehouseStoreUnreachable", b_instance),
            ("TracehouseSpoolFilling", b_instance),
            ("TracehouseBackpressure", b_instance),
        }
        _wait(lambda: expected <= prometheus.firing(), 45, prometheus.firing, tick=traffic)
        fired_at = time.monotonic() - started
        assert 200 in b_statuses and 503 in b_statuses  # B acknowledged until its spool was full
        firing = prometheus.firing()
        # Nothing else fires for A (B may also show its acknowledged spans not stored: true).
        assert {name for name, instance in firing if instance == a_instance} == {
            "TracehouseRecordsQuarantined",
            "TracehouseItemsRejected",
        }, firing
        assert ("TracehouseDown", a_instance) not in firing and ("TracehouseDown", b_instance) not in firing
        (alert,) = [
            x for x in prometheus.api("alerts")["alerts"] if x["labels"]["alertname"] == "TracehouseItemsRejected"
        ]
        assert alert["labels"]["reason"] == "future", alert
        assert alert["annotations"]["runbook_url"] == "docs/runbook.md#tracehouseitemsrejected"
        assert "50% of the spans" in alert["annotations"]["description"], alert  # as rendered by Prometheus

        # Recovery. A: the quarantined request is dropped, the client's clock is fixed.
        entries = _get(f"{a.http}/api/v1/quarantine")
        assert len(entries) == 1
        assert _delete(f"{a.http}/api/v1/quarantine/{entries[0]['id']}") == 200
        # B is stopped: down.
        b.stop()
        _wait(lambda: ("TracehouseDown", b_instance) in prometheus.firing(), 20, prometheus.firing)
        # ... and started again on the same port, on a store it can reach, with the same spool.
        b2 = Server(str(tmp_path / "b-store"), ("--http-port", str(port_b), "--spool", spool_b))
        stack.callback(b2.stop, signal.SIGKILL)
        b2.start()

        def recovered() -> bool:
            return (
                not prometheus.firing()
                and prometheus.value(f'tracehouse_writer_healthy{{instance="{b_instance}"}}') == 1
                and prometheus.value(f'tracehouse_spool_pending_bytes{{instance="{b_instance}"}}') == 0
                and prometheus.value(f'tracehouse_quarantine_records{{instance="{a_instance}"}}') == 0
            )

        _wait(recovered, 30, prometheus.firing, step=0.5)
        cleared_at = time.monotonic() - started

        # A stored what it acknowledged, log records too: the counters the drift alert compares.
        def counter(name: str, instance: str, signal_name: str) -> float:
            return prometheus.value(f'{name}{{instance="{instance}", signal="{signal_name}"}}')

        assert counter("tracehouse_items_stored_total", a_instance, "logs") == 1
        assert counter("tracehouse_items_accepted_total", a_instance, "logs") == 1
        assert counter("tracehouse_items_stored_total", a_instance, "traces") == (
            counter("tracehouse_items_accepted_total", a_instance, "traces") + prewritten_spans
        )
        # B's acknowledged spans, stored from its spool after the restart.
        assert counter("tracehouse_items_stored_total", b_instance, "traces") == b_statuses.count(200)

        # The ingest-health dashboard's Prometheus queries answer with series.
        dashboard = json.loads(INGEST_DASHBOARD.read_text())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"] if "expr" in t]
        assert len(exprs) >= 8
        for expr in exprs:
            query = expr.replace("$__rate_interval", "15s")
            result = prometheus.api("query", query=query)["result"]
            assert result, f"no series for {query}"
    print(f"alerts fired after {fired_at:.0f}s, all clear after {cleared_at:.0f}s")

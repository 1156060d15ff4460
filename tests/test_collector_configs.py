"""Collector configurations: valid pipelines of real component names that match what tracehouse serves.

The Collector binary is not installable here (it is not on PyPI, npm or Debian), so this checks
the configs against the Collector's configuration model: component ids are ``type[/name]`` of
components that exist in the core and contrib distributions, every pipeline references
defined components, environment references use the ``${env:NAME}`` form the Collector
expands, and the endpoints, ports, headers and tables are the ones tracehouse uses.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from otel_helpers import KNOWN_NAMES

from tracehouse import semconv
from tracehouse.auth import Auth, parse_api_keys
from tracehouse.server import Settings
from tracehouse.store import schema
from tracehouse.store.dsn import DEFAULT_DATABASE

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "collector-config").glob("*.yaml"))

# Component types of otelcol-contrib that these configs may use, by kind.
KNOWN = {
    "receivers": {"otlp", "prometheus", "filelog", "hostmetrics", "kafka", "zipkin", "jaeger"},
    "processors": {"batch", "memory_limiter", "filter", "attributes", "resource", "transform", "tail_sampling",
                   "k8sattributes", "resourcedetection", "groupbytrace"},
    "exporters": {"otlp", "otlphttp", "loadbalancing", "clickhouse", "debug", "file", "kafka", "prometheus"},
    "extensions": {"health_check", "file_storage", "pprof", "zpages", "bearertokenauth", "basicauth"},
    "connectors": {"forward", "spanmetrics", "routing"},
}  # fmt: skip
SIGNALS = {"traces", "logs", "metrics"}
OTLP_EXPORTER_KEYS = {"endpoint", "tls", "headers", "compression", "timeout", "retry_on_failure", "sending_queue",
                      "balancer_name", "auth", "keepalive", "read_buffer_size", "write_buffer_size"}  # fmt: skip


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def component_type(component_id: str) -> str:
    kind, _, _name = component_id.partition("/")
    return kind


def test_the_three_configs_exist():
    assert {p.name for p in CONFIGS} == {"to-tracehouse.yaml", "load-balancing.yaml", "to-clickhouse.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_is_a_valid_collector_configuration(path):
    text = path.read_text()
    assert text.lstrip().startswith("#"), "each config opens with a comment saying what it is for"
    config = load(path)
    assert set(config) <= set(KNOWN) | {"service"}
    for kind, components in config.items():
        if kind == "service":
            continue
        for component_id in components:
            assert re.fullmatch(r"[a-z_]+(/[A-Za-z0-9_.-]+)?", component_id), component_id
            assert component_type(component_id) in KNOWN[kind], f"{kind}: unknown component {component_id}"
    service = config["service"]
    used: set[tuple[str, str]] = set()
    for ext in service.get("extensions", []):
        assert ext in config.get("extensions", {}), ext
        used.add(("extensions", ext))
    assert service["pipelines"]
    for pipeline_id, pipeline in service["pipelines"].items():
        assert component_type(pipeline_id) in SIGNALS, pipeline_id
        assert pipeline.get("receivers") and pipeline.get("exporters"), pipeline_id
        for kind in ("receivers", "processors", "exporters"):
            for component_id in pipeline.get(kind, []):
                assert component_id in config.get(kind, {}), f"{pipeline_id}: {component_id} not defined"
                used.add((kind, component_id))
        processors = pipeline.get("processors", [])
        if "memory_limiter" in processors:
            assert processors[0] == "memory_limiter", "memory_limiter goes first"
    defined = {(kind, cid) for kind in KNOWN for cid in config.get(kind, {}) or {}}
    assert defined == used, f"defined but unused: {defined - used}"
    # The Collector expands ${env:NAME} (bare $NAME is no longer expanded).
    for ref in re.findall(r"\$\{?[A-Za-z_:]+\}?", re.sub(r"(?m)#.*$", "", text)):
        assert re.fullmatch(r"\$\{env:[A-Z_][A-Z0-9_]*\}", ref), ref


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_applications_keep_the_standard_otlp_ports(path):
    # Apps point at the Collector as they would at tracehouse: the same OTLP ports.
    otlp = load(path)["receivers"]["otlp"]["protocols"]
    defaults = Settings()
    assert otlp["grpc"]["endpoint"].endswith(f":{defaults.grpc_port}")
    assert otlp["http"]["endpoint"].endswith(f":{defaults.http_port}")


def _check_tracehouse_exporter(settings: dict) -> None:
    assert set(settings) <= OTLP_EXPORTER_KEYS, set(settings) - OTLP_EXPORTER_KEYS
    assert settings["retry_on_failure"]["enabled"] is True
    assert settings["sending_queue"]["enabled"] is True
    # The header is one tracehouse accepts: with the key substituted, it names the key's tenant.
    header = settings["headers"]["authorization"]
    auth = Auth(parse_api_keys("secret-key:team-a"))
    assert auth.tenant(header.replace("${env:TRACEHOUSE_API_KEY}", "secret-key")) == "team-a"


def test_to_tracehouse_exports_otlp_grpc_with_key_retry_and_queue():
    config = load(ROOT / "collector-config" / "to-tracehouse.yaml")
    exporter = config["exporters"]["otlp/tracehouse"]
    _check_tracehouse_exporter(exporter)
    assert exporter["sending_queue"]["storage"] in config["extensions"]
    # The filter keeps spans by attribute names tracehouse normalizes: each is a known name.
    (condition,) = config["processors"]["filter/genai"]["traces"]["span"]
    names = re.findall(r'attributes\["([^"]+)"\]', condition)
    assert names and set(names) <= KNOWN_NAMES, set(names) - KNOWN_NAMES
    assert semconv.TRACEHOUSE_RUN_ID in names and semconv.GEN_AI_OPERATION_NAME in names


def test_load_balancing_routes_by_trace_id_to_the_receivers_grpc_port():
    exporter = load(ROOT / "collector-config" / "load-balancing.yaml")["exporters"]["loadbalancing/tracehouse"]
    assert exporter["routing_key"] == "traceID"
    assert exporter["resolver"]["dns"]["port"] == Settings().grpc_port
    _check_tracehouse_exporter(exporter["protocol"]["otlp"])


def test_direct_clickhouse_export_targets_tracehouse_tables():
    exporter = load(ROOT / "collector-config" / "to-clickhouse.yaml")["exporters"]["clickhouse"]
    assert exporter["database"] == DEFAULT_DATABASE
    assert exporter["traces_table_name"] == schema.SPANS
    assert exporter["logs_table_name"] == schema.LOGS
    assert exporter["create_schema"] is False
    # Rows it writes get defaults for tracehouse's own columns (tests/test_schema.py inserts
    # the exporter's column list and checks them).
    assert {"Tenant", "RunId", "TtlDays"} <= set(schema.COLLECTOR_DEFAULTS[schema.SPANS])

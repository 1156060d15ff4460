"""Imports run one way: core (semconv, vocabulary, model, conventions) at the bottom; the instrumentation on
core and the OpenTelemetry API/SDK only; ingest and the read service on the store; the HTTP app
and the web page on those; the Python client on the response models only. The package root, which
every import of a tracehouse module runs first, loads the recording API and the client on first
use only.

Each check imports in a fresh interpreter and reads ``sys.modules``, so what a module loads
through any chain of imports counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from imports import IN_MEMORY, RECORD  # noqa: E402 (the run benchmarks/imports.py records)

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "tracehouse"

# What a server needs and a recording agent or the Python client does not.
SERVER_STACK = ("clickhouse_connect", "chdb", "fastapi", "starlette", "uvicorn", "prometheus_client", "jinja2")
# The canonical rows' validation: the reading side's, not the recording side's.
ROWS = ("pydantic", "tracehouse.model")
UPPER_LAYERS = ("tracehouse.ingest", "tracehouse.store", "tracehouse.api", "tracehouse.web", "tracehouse.server")

# Nothing listens there: the spans wait in the batch processor, which is never flushed.
OVER_OTLP = "import tracehouse\ntracehouse.configure('agent', endpoint='http://127.0.0.1:9', protocol={protocol!r})\n"


def _loaded(code: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules loaded after running ``code`` in a fresh interpreter."""
    report = "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)), flush=True)\nimport os\nos._exit(0)\n"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(SRC), os.environ.get("PYTHONPATH"))))}
    environment.update(env or {})
    result = subprocess.run(
        [sys.executable, "-c", code + report], capture_output=True, text=True, timeout=120, env=environment
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def _under(modules: set[str], *packages: str) -> list[str]:
    """The modules that are, or are inside, any of ``packages``."""
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


def _modules(folder: str) -> list[str]:
    """Every module of a subpackage of tracehouse, by its dotted name."""
    names = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _importing(modules: list[str]) -> str:
    return "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)


def test_recording_a_run_loads_no_store_no_server_and_no_grpc():
    loaded = _loaded(IN_MEMORY + RECORD + "assert len(spans.get_finished_spans()) == 4\n")
    assert "tracehouse.instrument.nesting" in loaded  # the nesting check ran on every span's end
    assert not _under(loaded, *SERVER_STACK, *UPPER_LAYERS, *ROWS, "tracehouse.client", "grpc")


def test_recording_over_otlp_http_loads_no_store_no_server_and_no_grpc():
    loaded = _loaded(OVER_OTLP.format(protocol="http/protobuf") + RECORD)
    assert "opentelemetry.exporter.otlp.proto.http.trace_exporter" in loaded
    assert not _under(loaded, *SERVER_STACK, *UPPER_LAYERS, *ROWS, "tracehouse.client", "grpc")


def test_recording_over_otlp_grpc_loads_grpc_as_a_client_only():
    loaded = _loaded(OVER_OTLP.format(protocol="grpc") + RECORD)
    assert "grpc" in loaded  # the OTel gRPC exporter's channel
    assert not _under(loaded, *SERVER_STACK, *UPPER_LAYERS, *ROWS, "tracehouse.client", "grpc._server")


def test_importing_tracehouse_loads_neither_the_store_nor_the_client():
    loaded = _loaded("import tracehouse")
    assert not _under(loaded, *SERVER_STACK, *UPPER_LAYERS, "tracehouse.client", "grpc")


def test_the_whole_instrumentation_stays_off_the_store_and_the_server():
    # Every module of instrument/, framework integrations included (they load their framework
    # only when it is instrumented).
    loaded = _loaded(_importing(_modules("instrument")))
    assert not _under(loaded, *SERVER_STACK, *UPPER_LAYERS, *ROWS, "tracehouse.client", "grpc")


@pytest.mark.parametrize(
    "code", ["import tracehouse.client", "from tracehouse import Client\nClient('http://127.0.0.1:9')"]
)
def test_the_python_client_loads_no_http_server_no_store_and_no_recording_side(code):
    loaded = _loaded(code)
    assert "tracehouse.responses" in loaded
    assert not _under(loaded, *SERVER_STACK, *UPPER_LAYERS, "tracehouse.instrument", "opentelemetry.sdk")


def test_the_recording_api_is_there_on_first_use():
    loaded = _loaded(
        "import tracehouse\n"
        "assert 'tracehouse.instrument' not in __import__('sys').modules\n"
        "assert tracehouse.run is __import__('tracehouse.instrument', fromlist=['run']).run\n"
        "assert {'run', 'node', 'llm_call', 'tool', 'Client'} <= set(dir(tracehouse))\n"
        "try:\n    tracehouse.nope\nexcept AttributeError as e:\n    assert 'nope' in str(e)\n"
        "else:\n    raise AssertionError('no AttributeError')\n"
    )
    assert "tracehouse.instrument" in loaded


def test_core_modules_stand_alone():
    core = [
        "tracehouse.semconv",
        "tracehouse.vocabulary",
        "tracehouse.model",
        "tracehouse.conventions",
        "tracehouse.auth",
    ]
    loaded = _loaded(_importing(core))
    assert not _under(loaded, *SERVER_STACK, *UPPER_LAYERS, "tracehouse.client", "tracehouse.instrument")


def test_the_store_loads_neither_ingest_nor_the_http_app():
    loaded = _loaded(_importing(_modules("store")))
    assert "tracehouse.store.reads" in loaded
    assert not _under(
        loaded, "tracehouse.ingest", "tracehouse.api", "tracehouse.web", "tracehouse.server", "fastapi",
        "tracehouse.instrument", "opentelemetry.sdk",
    )  # fmt: skip


def test_ingest_loads_neither_the_http_app_nor_the_web_page():
    loaded = _loaded(_importing(_modules("ingest")))
    assert "tracehouse.ingest.writer" in loaded
    assert not _under(loaded, "tracehouse.api", "tracehouse.web", "tracehouse.server", "jinja2", "uvicorn")

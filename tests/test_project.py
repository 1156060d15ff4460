"""The project's own promises: README commands, CI, lint, layout."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text[: text.index("\n## ", text.index("## Quick start") + 1)]
    return re.findall(r"^```(?:bash|sh)\n(.+?)\n```", head, re.MULTILINE | re.DOTALL)


def test_readme_opens_with_the_two_setup_commands():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    run, test = commands
    assert run.startswith("python3 -m venv .venv && .venv/bin/pip install -e . && ")
    assert run.endswith(".venv/bin/tracehouse demo")
    assert test == "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]' && .venv/bin/python -m pytest"


def test_ci_runs_exactly_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert script[-1] == _readme_commands()[1]


def test_top_level_holds_what_a_user_expects():
    expected = {"pyproject.toml", "src", "collector-config", "dashboards", "tests", "docs", "benchmarks", "README.md"}
    present = {p.name for p in ROOT.iterdir() if not p.name.startswith(".")}
    assert expected <= present
    assert not {p for p in present - expected if p not in {"tracehouse-data", "build", "dist"}}


def test_code_is_ruff_clean():
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "src", "tests", "benchmarks", "dashboards"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_wheel_carries_every_file_of_the_web_page():
    import tomllib
    from fnmatch import fnmatch

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["tracehouse"]
    package = ROOT / "src" / "tracehouse"
    files = [p for folder in ("web/templates", "web/static") for p in (package / folder).rglob("*") if p.is_file()]
    assert files
    for path in files:
        relative = path.relative_to(package).as_posix()
        # setuptools' globs: "*" does not cross a "/".
        assert any(fnmatch(relative, pattern) and relative.count("/") == pattern.count("/") for pattern in patterns), (
            f"{relative} is not in [tool.setuptools.package-data]"
        )


def test_ci_installs_the_browser_before_the_tests():
    script = (ROOT / ".ci" / "run").read_text()
    assert "apt-get install -y chromium chromium-driver" in script
    assert script.index("chromium-driver") < script.index(_readme_commands()[1])

"""How every benchmark prints its result: one JSON object that names the machine it ran on."""

from __future__ import annotations

import json
import os
import platform


def print_report(result: dict) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps(result | {"machine": machine}, indent=2))

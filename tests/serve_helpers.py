"""A real `tracehouse serve` in a subprocess, and a look into its store once it has stopped."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field


def unused_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_READY = re.compile(r"OTLP/gRPC on ([\d.]+):(\d+), OTLP/HTTP and API on (http://[\d.]+:\d+)")


@dataclass
class Server:
    store_dir: str
    args: tuple[str, ...] = ()
    store: str | None = None  # a store DSN; default: the embedded store in store_dir
    process: subprocess.Popen | None = None
    grpc: str = ""
    http: str = ""
    output: list[str] = field(default_factory=list)

    def start(self, timeout: float = 240) -> Server:
        command = [
            sys.executable,
            "-m",
            "tracehouse.cli",
            "serve",
            "--store",
            self.store or f"chdb://{self.store_dir}",
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            *self.args,
        ]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.output.append(line)
            match = _READY.search(line)
            if match:
                self.grpc = f"{match.group(1)}:{match.group(2)}"
                self.http = match.group(3)
                return self
        self.process.kill()
        raise RuntimeError("tracehouse serve did not start:\n" + "".join(self.output))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> str:
        """Stop the server and return what it printed after starting."""
        if self.process is None or self.process.poll() is not None:
            return ""
        self.process.send_signal(sig)
        rest, _ = self.process.communicate(timeout=timeout)
        self.output.append(rest)
        return rest


def dump_store(store_dir: str, sql: str) -> list:
    """Run a query on a stopped server's embedded store, in a process of its own."""
    script = textwrap.dedent(f"""
        import json, sys
        from tracehouse.store import Store
        store = Store.open({f"chdb://{store_dir}"!r})
        rows = store.query({sql!r})
        print(json.dumps([list(r) for r in rows], default=str))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    if result.returncode:
        raise RuntimeError(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])

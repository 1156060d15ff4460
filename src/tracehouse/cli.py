"""The ``tracehouse`` command."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from tracehouse import __version__
from tracehouse.client import Client, ClientError
from tracehouse.ingest.checks import DEFAULT_MAX_ATTRIBUTES, DEFAULT_MAX_DAYS_PER_REQUEST, DEFAULT_MAX_VALUE_BYTES
from tracehouse.ingest.writer import DEFAULT_INTERVAL
from tracehouse.model import DEFAULT_RUN_IDLE_TIMEOUT, MAX_TTL_DAYS, Node, Run
from tracehouse.responses import NotFound
from tracehouse.store import DEFAULT_DSN, DSNError, Store, StoreError, migrations, parse_dsn
from tracehouse.store.dsn import DEFAULT_DATABASE
from tracehouse.store.schema import Layout


def _env(name: str, default: str) -> str:
    return os.environ.get(f"TRACEHOUSE_{name}", default)


def _env_int(name: str) -> int | None:
    value = os.environ.get(f"TRACEHOUSE_{name}")
    return int(value) if value else None


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds from ``1800``, ``90s``, ``30m``, ``1h30m`` or ``2d`` (a bare number is seconds)."""
    value = text.strip().lower()
    try:
        return float(value)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(number + unit for number, unit in parts) != value:
        raise ValueError(f"{text!r} is not a duration: give seconds, or e.g. 90s, 30m, 1h30m, 2d")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def parse_time(text: str) -> datetime:
    """A point in time written in ISO 8601 (``2026-05-01``, ``2026-05-01T12:00:00+02:00``)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, e.g. 2026-05-01T12:00:00") from None


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=_env("STORE", DEFAULT_DSN),
        help="store DSN: chdb://PATH (embedded) or http(s)://user:pw@host:8123/db "
        f"(env TRACEHOUSE_STORE; default {DEFAULT_DSN})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tracehouse", description="The flight recorder for AI agents.")
    parser.add_argument("--version", action="version", version=f"tracehouse {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    schema = commands.add_parser("schema", help="print the ClickHouse DDL of every table")
    schema.set_defaults(handler=cmd_schema)
    schema.add_argument("--cluster", help="render for a cluster: ON CLUSTER, Replicated and Distributed tables")
    schema.add_argument("--database", default=DEFAULT_DATABASE, help=f"database name (default {DEFAULT_DATABASE})")

    migrate = commands.add_parser("migrate", help="create or upgrade the schema of a store")
    migrate.set_defaults(handler=cmd_migrate)
    _add_store(migrate)
    migrate.add_argument("--cluster", help="the ClickHouse cluster to create the tables on")

    serve = commands.add_parser("serve", help="receive OTLP (gRPC and HTTP) into the store and serve the API")
    serve.set_defaults(handler=cmd_serve)
    _add_store(serve)
    serve.add_argument("--host", default=_env("HOST", "127.0.0.1"), help="address to listen on (env TRACEHOUSE_HOST)")
    serve.add_argument(
        "--cluster",
        default=os.environ.get("TRACEHOUSE_CLUSTER"),
        help="ClickHouse cluster the schema lives on (tracehouse schema --cluster); env TRACEHOUSE_CLUSTER",
    )
    serve.add_argument(
        "--grpc-port",
        type=int,
        default=int(_env("GRPC_PORT", "4317")),
        help="OTLP/gRPC port, 0 picks a free one (env TRACEHOUSE_GRPC_PORT; default 4317)",
    )
    serve.add_argument(
        "--http-port",
        type=int,
        default=int(_env("HTTP_PORT", "4318")),
        help="OTLP/HTTP and API port, 0 picks a free one (env TRACEHOUSE_HTTP_PORT; default 4318)",
    )
    serve.add_argument(
        "--api-keys",
        default=_env("API_KEYS", ""),
        help="KEY:TENANT[,KEY:TENANT...]; none: one tenant, no key asked (env TRACEHOUSE_API_KEYS)",
    )
    serve.add_argument(
        "--retention-days",
        type=int,
        default=int(_env("RETENTION_DAYS", "30")),
        help="default retention of stored rows (env TRACEHOUSE_RETENTION_DAYS; default 30)",
    )
    serve.add_argument(
        "--payload-retention-days",
        type=int,
        default=_env_int("PAYLOAD_RETENTION_DAYS"),
        help="retention of inputs, outputs and messages, at most --retention-days "
        "(env TRACEHOUSE_PAYLOAD_RETENTION_DAYS; default: the same)",
    )
    serve.add_argument(
        "--spool",
        default=_env("SPOOL", "") or None,
        help="spool directory (env TRACEHOUSE_SPOOL; default: beside the embedded store)",
    )
    serve.add_argument(
        "--spool-max-mb",
        type=int,
        default=int(_env("SPOOL_MAX_MB", "1024")),
        help="spool size at which clients are told to retry later (env TRACEHOUSE_SPOOL_MAX_MB)",
    )
    serve.add_argument(
        "--normalize",
        choices=["auto", "engine", "python"],
        default=_env("NORMALIZE", "auto"),
        help="where spans are normalized: inside the engine, the embedded one or a ClickHouse server's "
        "(auto: where the engine can, which a server can from 25.6 on) or in Python (env TRACEHOUSE_NORMALIZE)",
    )
    serve.add_argument(
        "--batch-interval",
        type=float,
        default=float(_env("BATCH_INTERVAL", str(DEFAULT_INTERVAL))),
        help="seconds a span waits in the spool for more to store with it: lower is sooner visible, "
        f"higher is fewer, larger inserts (env TRACEHOUSE_BATCH_INTERVAL; default {DEFAULT_INTERVAL})",
    )
    serve.add_argument(
        "--run-idle-timeout",
        default=_env("RUN_IDLE_TIMEOUT", f"{DEFAULT_RUN_IDLE_TIMEOUT:g}"),
        help="a run whose root span has not arrived is incomplete (its agent most likely crashed) once no "
        "span of it has ended for this long: seconds, or a duration like 30m or 1h; its root still wins "
        f"when it arrives (env TRACEHOUSE_RUN_IDLE_TIMEOUT; default {DEFAULT_RUN_IDLE_TIMEOUT:g} s, 30 minutes)",
    )
    serve.add_argument(
        "--max-request-mb",
        type=int,
        default=int(_env("MAX_REQUEST_MB", "20")),
        help="largest request accepted, after decompression (env TRACEHOUSE_MAX_REQUEST_MB; default 20)",
    )
    serve.add_argument(
        "--max-clock-skew",
        type=parse_duration,
        default=_env("MAX_CLOCK_SKEW", "24h"),
        help="how far in the future a span may start or end before it is rejected as a wrong clock: "
        "seconds, or e.g. 90s, 30m, 24h (env TRACEHOUSE_MAX_CLOCK_SKEW; default 24h)",
    )
    serve.add_argument(
        "--max-days-per-request",
        type=int,
        default=int(_env("MAX_DAYS_PER_REQUEST", str(DEFAULT_MAX_DAYS_PER_REQUEST))),
        help="different days one request's spans may start on; those of the latest days are kept "
        f"(env TRACEHOUSE_MAX_DAYS_PER_REQUEST; default {DEFAULT_MAX_DAYS_PER_REQUEST})",
    )
    serve.add_argument(
        "--max-attributes",
        type=int,
        default=int(_env("MAX_ATTRIBUTES", str(DEFAULT_MAX_ATTRIBUTES))),
        help="attributes kept per span, event or log record; the rest are dropped and counted "
        f"(env TRACEHOUSE_MAX_ATTRIBUTES; default {DEFAULT_MAX_ATTRIBUTES})",
    )
    serve.add_argument(
        "--max-value-kb",
        type=int,
        default=int(_env("MAX_VALUE_KB", str(DEFAULT_MAX_VALUE_BYTES >> 10))),
        help="largest attribute value or log body kept whole; larger ones are truncated with a marker "
        f"(env TRACEHOUSE_MAX_VALUE_KB; default {DEFAULT_MAX_VALUE_BYTES >> 10})",
    )

    def server_args(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--url",
            default=_env("URL", "http://127.0.0.1:4318"),
            help="the server to ask (env TRACEHOUSE_URL; default http://127.0.0.1:4318)",
        )
        parser.add_argument("--api-key", default=_env("API_KEY", "") or None, help="env TRACEHOUSE_API_KEY")
        parser.add_argument("--tenant", default=None, help="the tenant to read, for a server without API keys")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def reader_args(parser: argparse.ArgumentParser) -> None:
        server_args(parser)
        parser.add_argument("-v", "--verbose", action="store_true", help="say where the data is read from")
        _add_store(parser)

    runs_cmd = commands.add_parser("runs", help="list runs, newest first")
    runs_cmd.set_defaults(handler=cmd_read)
    reader_args(runs_cmd)
    runs_cmd.add_argument("--agent", help="only this agent's runs")
    runs_cmd.add_argument("--limit", type=int, default=20)
    runs_cmd.add_argument("--skip", type=int, default=0)
    logs_cmd = commands.add_parser("logs", help="what happened inside one run")
    logs_cmd.set_defaults(handler=cmd_read)
    reader_args(logs_cmd)
    logs_cmd.add_argument("run_id")
    replay_cmd = commands.add_parser("replay", help="a run's events in order")
    replay_cmd.set_defaults(handler=cmd_read)
    reader_args(replay_cmd)
    replay_cmd.add_argument("run_id")
    replay_cmd.add_argument("--mode", choices=["transcript", "full"], default="full")
    replay_cmd.add_argument(
        "--format",
        choices=["text", "json", "openai"],
        default="text",
        help="openai: the messages to resume the run from, in the OpenAI chat format",
    )
    stats_cmd = commands.add_parser("stats", help="run statistics per agent, user or tenant")
    stats_cmd.set_defaults(handler=cmd_read)
    reader_args(stats_cmd)
    stats_cmd.add_argument("--by", choices=["agent", "user", "tenant"], default="agent")
    stats_cmd.add_argument("--since", type=parse_time, help="ISO 8601 start of the window (default: everything kept)")
    usage_cmd = commands.add_parser("usage", help="LLM usage and cost by model, provider, agent, user or run")
    usage_cmd.set_defaults(handler=cmd_read)
    reader_args(usage_cmd)
    usage_cmd.add_argument("--by", choices=["model", "provider", "agent", "user", "run"], default="model")
    usage_cmd.add_argument("--since", type=parse_time, help="ISO 8601 start of the window (default: everything kept)")
    delete_cmd = commands.add_parser("delete", help="forget a run (and its sub-agent runs)")
    delete_cmd.set_defaults(handler=cmd_read)
    reader_args(delete_cmd)
    delete_cmd.add_argument("run_id")
    retention_cmd = commands.add_parser(
        "retention", help="show or set the tenant's retention, or apply retention now (--cleanup)"
    )
    retention_cmd.set_defaults(handler=cmd_read)
    reader_args(retention_cmd)
    retention_cmd.add_argument("--days", type=int, help="keep the tenant's rows this many days (from now on)")
    retention_cmd.add_argument("--payload-days", type=int, help="keep inputs, outputs and messages this many days")
    retention_cmd.add_argument("--cleanup", action="store_true", help="drop what has expired now, and say what")
    tail_cmd = commands.add_parser("tail", help="follow runs live as the server stores them")
    tail_cmd.set_defaults(handler=cmd_tail)
    server_args(tail_cmd)  # --json: one JSON object a line
    tail_cmd.add_argument("--agent", help="only this agent's runs")
    tail_cmd.add_argument("--run", dest="run_id", help="only this run")
    tail_cmd.add_argument("--idle-timeout", type=float, help="stop after this many seconds without an event")

    quarantine_cmd = commands.add_parser(
        "quarantine", help="requests the store refused for their data: list, retry or drop them"
    )
    quarantine_cmd.set_defaults(handler=cmd_quarantine)
    quarantine_cmd.add_argument("action", choices=["list", "retry", "drop"])
    quarantine_cmd.add_argument("ids", nargs="*", help="the entries to retry or drop (see list)")
    quarantine_cmd.add_argument("--all", action="store_true", help="retry or drop every entry listed")
    reader_args(quarantine_cmd)
    quarantine_cmd.add_argument(
        "--spool",
        default=_env("SPOOL", "") or None,
        help="the server's spool directory, used when no server answers (default: beside the embedded store)",
    )

    demo = commands.add_parser(
        "demo", help="fill a store with sample agent runs, show one, and serve the web page on them"
    )
    demo.set_defaults(handler=cmd_demo)
    _add_store(demo)
    demo.add_argument("--runs", type=int, default=5, help="how many sample runs to write (default 5)")
    demo.add_argument(
        "--no-serve", action="store_true", help="print and exit, instead of serving the store as tracehouse serve"
    )
    demo.add_argument(
        "--http-port",
        type=int,
        default=int(_env("HTTP_PORT", "4318")),
        help="the web page, API and OTLP/HTTP port, 0 picks a free one (env TRACEHOUSE_HTTP_PORT; default 4318)",
    )
    demo.add_argument(
        "--grpc-port",
        type=int,
        default=int(_env("GRPC_PORT", "4317")),
        help="OTLP/gRPC port, 0 picks a free one (env TRACEHOUSE_GRPC_PORT; default 4317)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (DSNError, StoreError, ValueError, ClientError, NotFound) as exc:
        print(f"tracehouse: error: {exc}", file=sys.stderr)
        return 2


def cmd_schema(args: argparse.Namespace) -> int:
    layout = Layout(database=args.database, cluster=args.cluster)
    print(";\n\n".join(migrations.all_statements(layout)) + ";")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    with Store.open(args.store, cluster=args.cluster, migrate=False) as store:
        applied = migrations.migrate(store.client, store.layout)
        print(
            f"{store.address.describe()}: schema version {store.schema_version()}"
            + (f" (applied {', '.join(map(str, applied))})" if applied else " (up to date)")
        )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from tracehouse.auth import parse_api_keys
    from tracehouse.ingest.checks import Limits
    from tracehouse.server import Settings, run

    _check_ports(args)
    if args.spool_max_mb < 1 or args.max_request_mb < 1:
        raise ValueError("--spool-max-mb and --max-request-mb must be at least 1")
    if not 0.01 <= args.batch_interval <= 60:
        raise ValueError("--batch-interval must be between 0.01 and 60 seconds")
    if args.retention_days < 1 or (args.payload_retention_days is not None and args.payload_retention_days < 1):
        raise ValueError("retention must be at least 1 day")
    run_idle_timeout = parse_duration(args.run_idle_timeout)
    if not 1 <= run_idle_timeout <= MAX_TTL_DAYS * 86400:  # also refuses nan and inf
        raise ValueError("--run-idle-timeout must be at least 1 second (and at most the longest retention)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(
        Settings(
            store=args.store,
            cluster=args.cluster,
            host=args.host,
            grpc_port=args.grpc_port,
            http_port=args.http_port,
            api_keys=parse_api_keys(args.api_keys),
            retention_days=args.retention_days,
            payload_retention_days=args.payload_retention_days,
            spool=args.spool,
            spool_max_bytes=args.spool_max_mb << 20,
            max_request_bytes=args.max_request_mb << 20,
            normalize=args.normalize,
            batch_interval=args.batch_interval,
            limits=Limits(
                max_clock_skew=args.max_clock_skew,
                max_attributes=args.max_attributes,
                max_days_per_request=args.max_days_per_request,
                max_value_bytes=args.max_value_kb << 10,
            ),
            run_idle_timeout=run_idle_timeout,
        )
    )
    return 0


def cmd_read(args: argparse.Namespace) -> int:
    import json

    from tracehouse.reader import open_reader

    with open_reader(args.url, args.api_key, args.tenant, args.store) as (reader, where):
        if args.verbose:
            print(where, file=sys.stderr)
        if args.command == "runs":
            result: Any = reader.history(agent=args.agent, skip=args.skip, limit=args.limit)
            text = format_history(result)
        elif args.command == "logs":
            result = reader.logs(args.run_id)
            text = format_logs(result)
        elif args.command in ("stats", "usage"):
            if args.command == "stats":
                result = reader.stats(group_by=args.by, since=args.since)
            else:
                result = reader.usage(by=args.by, since=args.since)
            text = format_table(result)
        elif args.command == "retention":
            if args.cleanup:
                result = reader.cleanup()
                text = "removed: " + (", ".join(f"{n} {t}" for t, n in result.removed.items()) or "nothing")
            else:
                if args.days is not None:
                    result = reader.set_retention(args.days, args.payload_days)
                elif args.payload_days is not None:
                    raise ValueError("--payload-days needs --days")
                else:
                    result = reader.retention()
                text = format_retention(result)
        elif args.command == "delete":
            result = reader.delete_run(args.run_id)
            text = f"deleted run {args.run_id}: " + ", ".join(f"{n} {t}" for t, n in result.removed.items())
        elif args.format == "openai":
            result, text, args.json = reader.resume(args.run_id).messages, "", True
        else:
            result = reader.events(args.run_id, args.mode)
            text = format_replay(result)
            args.json = args.json or args.format == "json"
    if args.json:
        dump = lambda r: r.model_dump(mode="json") if hasattr(r, "model_dump") else r  # noqa: E731
        print(
            json.dumps(
                [dump(r) for r in result] if isinstance(result, list) else dump(result), indent=2, ensure_ascii=False
            )
        )
    else:
        print(text)
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    import json

    from tracehouse.reader import open_quarantine
    from tracehouse.server import Settings

    spool = Settings(store=args.store, spool=args.spool).spool_dir(parse_dsn(args.store))
    quarantine, where = open_quarantine(args.url, args.api_key, args.tenant, spool)
    if args.verbose:
        print(where, file=sys.stderr)
    if args.action == "list":
        chosen = quarantine.quarantined()
    else:
        entries = quarantine.quarantined() if args.all else []
        if not args.ids and not args.all:
            raise ValueError(f"quarantine {args.action} needs entry ids, or --all")
        act = quarantine.retry_quarantined if args.action == "retry" else quarantine.drop_quarantined
        chosen = [act(entry_id) for entry_id in ([e.id for e in entries] if args.all else args.ids)]
    if args.json:
        print(json.dumps([e.model_dump(mode="json") for e in chosen], indent=2, ensure_ascii=False))
    elif args.action == "list":
        print(format_quarantine(chosen) if chosen else "the quarantine is empty")
    else:
        done = "retried (back in the spool)" if args.action == "retry" else "dropped"
        print("\n".join(f"{done}: {e.id}" for e in chosen) or "nothing to do")
    return 0


def format_quarantine(entries: Sequence[Any]) -> str:
    lines = []
    for e in entries:
        tenant = e.tenant or "(named by its spans)"
        when = f"{e.acknowledged_at:%Y-%m-%d %H:%M:%S}Z"
        lines.append(f"{e.id}  {e.signal}  tenant {tenant}  {e.size_bytes} bytes  acknowledged {when}")
        lines.append(f"    {e.error[:300]}")
    return "\n".join(lines)


def cmd_tail(args: argparse.Namespace) -> int:
    """Live events from the server's WebSocket, one line each, until interrupted."""
    import json

    client = Client(args.url, args.api_key, tenant=args.tenant)
    events = client.tail(args.agent, args.run_id, idle_timeout=args.idle_timeout)
    print(f"following {args.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        for event in events:
            print(json.dumps(event, ensure_ascii=False) if args.json else format_live(event), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def format_live(event: dict[str, Any]) -> str:
    """One live event as a line: the run, what happened, how long it took, the error if any."""
    kind, run, agent = event.get("type", "?"), event.get("run_id", ""), event.get("agent", "")
    error = ""
    if kind == "node_executed":
        node = event.get("node", {})
        what = f"{node.get('name', '')} [{node.get('type', '')}] {node.get('status', '')} "
        what += _duration(int(node.get("duration_ms", 0) * 1e6))
        error = node.get("error") or ""
    elif kind == "execution_started":
        what = "started"
    elif kind == "execution_incomplete":
        what = f"incomplete, last span ended {event.get('last_span_at', '')[:19].replace('T', ' ')} UTC"
    else:
        what = f"{event.get('status', '')} {_duration(int(event.get('duration_ms', 0) * 1e6))}"
        error = event.get("error") or ""
    return f"{run}  {agent:<15} {kind:<19} {what}" + (f"  error: {error}" if error else "")


def format_retention(settings: Any) -> str:
    days = settings.retention_days
    payload = settings.payload_retention_days
    return (
        f"retention: {days if days is not None else 'server default'} days; "
        f"payloads: {payload if payload is not None else 'same as retention'} days"
    )


def format_table(rows: Sequence[dict]) -> str:
    """Rows of numbers as an aligned table; fractions with three decimals."""
    if not rows:
        return "nothing in this window"
    columns = list(rows[0])
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def format_history(items: Sequence[Any]) -> str:
    """History items as a table, the same whether read through a server or from the store."""
    lines = [
        f"{'STARTED (UTC)':<20} {'AGENT':<15} {'STATUS':<10} {'TIME':>7} {'NODES':>5} {'TOKENS':>7} {'CENTS':>8}"
        "  RUN / INPUT"
    ]
    for item in items:
        lines.append(
            f"{item.started_at[:19].replace('T', ' '):<20} {item.agent[:15]:<15} {item.status:<10} "
            f"{item.duration:>7} {item.node_count:>5} {item.tokens_used:>7} {item.cost_cents:>8.3f}  "
            f"{item.run_id}  {item.input[:40]}"
        )
    return "\n".join(lines) if items else "no runs"


def format_logs(logs: Any) -> str:
    s = logs.summary
    lines = [
        f"run {logs.run_id}: {s.total_nodes} nodes ({s.successful_nodes} ok, {s.failed_nodes} failed), "
        f"{s.total_duration}, {s.tokens_used} tokens, {s.cost_cents:.3f} cents"
    ]

    def describe(node: Any) -> str:
        extra = f"  error: {node.error_message}" if node.error_message else ""
        return f"{node.metadata.get('name', node.id)}  [{node.type}]  {node.status}  {node.time}{extra}"

    # A node whose parent is not a node (the run's own root span) hangs from the run.
    lines += _tree_lines(
        logs.nodes, lambda n: n.id, lambda n: n.metadata.get("parent_id", ""), describe, indent="  ", branch_top=True
    )
    if logs.final_output:
        lines.append(f"final output: {logs.final_output}")
    return "\n".join(lines)


def format_replay(replay: Any) -> str:
    """One line an event: the time, who spoke (or what kind of event), what was said or done."""
    lines = []
    for e in replay.events:
        label = e.role if e.kind == "message" else f"{e.kind} {e.name}".strip()
        lines.append(f"{e.timestamp:%H:%M:%S}.{e.timestamp.microsecond // 1000:03d}  {label:<24} {e.content}")
    return "\n".join(lines) if lines else "no events"


def _check_ports(args: argparse.Namespace) -> None:
    for name in ("grpc_port", "http_port"):
        if not 0 <= getattr(args, name) <= 65535:
            raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 65535")


def cmd_demo(args: argparse.Namespace) -> int:
    """Sample runs into the store, the newest shown; then, unless ``--no-serve``, the store
    served like ``tracehouse serve`` (the web page on the sample runs) until Ctrl-C."""
    from tracehouse.demo import sample_run, sample_runs
    from tracehouse.store import queries

    if args.runs < 1:
        raise ValueError("--runs must be at least 1")
    _check_ports(args)
    with Store.open(args.store) as store:
        samples = [*sample_runs(args.runs - 1, seed=os.getpid()), sample_run(seed=os.getpid())]
        for sample in samples:
            store.write(sample.nodes, sample.events)
        spans = sum(len(s.nodes) for s in samples)
        print(f"Wrote {len(samples)} sample runs ({spans} spans) to {store.address.describe()}.\n")
        tenant = samples[-1].nodes[0].tenant
        runs = queries.list_runs(store, tenant, top_level=True, limit=10)
        print(format_runs(runs))
        shown = samples[-1]
        root = next(n for n in shown.nodes if n.run_root)
        print(f"\nThe newest run, {shown.run_id}, span by span:\n")
        print(format_tree(queries.trace_nodes(store, tenant, root.trace_id)))
        from tracehouse.store.reads import ReadService

        print(f"\nIts replay (tracehouse replay {shown.run_id} --store {args.store}):\n")
        print(format_replay(ReadService(store, tenant).events(shown.run_id)), flush=True)
    if args.no_serve:
        return 0
    return _serve_demo(args)


def _serve_demo(args: argparse.Namespace) -> int:
    import logging

    from tracehouse.server import Settings, run

    def ready(url: str, grpc: str) -> None:
        print(
            f"\nopen {url}/ to browse the sample runs (OTLP exporters may send more: {url}, or gRPC on {grpc}); "
            "Ctrl-C stops",
            flush=True,
        )

    print()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run(Settings(store=args.store, http_port=args.http_port, grpc_port=args.grpc_port), on_ready=ready)
    except OSError as exc:
        print(
            f"tracehouse: error: cannot serve the page: {exc}. The sample runs are stored; pick other ports "
            "(--http-port, --grpc-port; 0 picks free ones) or stop what holds them",
            file=sys.stderr,
        )
        return 2
    return 0


def _duration(ns: int) -> str:
    seconds = ns / 1e9
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


def format_runs(runs: Sequence[Run]) -> str:
    lines = [
        f"{'STARTED (UTC)':<20} {'AGENT':<15} {'STATUS':<10} {'TIME':>7} "
        f"{'NODES':>5} {'TOKENS':>7} {'COST $':>8}  INPUT"
    ]
    for run in runs:
        lines.append(
            f"{run.started_at:%Y-%m-%d %H:%M:%S}  {run.agent_name[:15]:<15} {run.status.value:<10} "
            f"{_duration(run.duration_ns):>7} {run.node_count:>5} {run.usage.total_tokens:>7} "
            f"{run.cost_usd:>8.4f}  {run.input_preview[:50]}"
        )
    return "\n".join(lines)


def format_tree(nodes: Sequence[Node]) -> str:
    """Spans as an indented tree, children in start order."""
    return "\n".join(_tree_lines(nodes, lambda n: n.span_id, lambda n: n.parent_span_id, _describe))


def _tree_lines(
    items: Sequence[Any],
    key: Callable[[Any], str],
    parent: Callable[[Any], str],
    describe: Callable[[Any], str],
    *,
    indent: str = "",
    branch_top: bool = False,
) -> list[str]:
    """Items as tree lines, children in the items' order; an item whose parent is not among them
    is at the top (drawn with branches only when ``branch_top``)."""
    ids = {key(item) for item in items}
    children: dict[str, list[Any]] = {}
    for item in items:
        children.setdefault(parent(item) if parent(item) in ids else "", []).append(item)
    lines: list[str] = []

    def walk(of: str, prefix: str, top: bool) -> None:
        kids = children.get(of, [])
        for i, item in enumerate(kids):
            last = i == len(kids) - 1
            branch = "" if top and not branch_top else ("└─ " if last else "├─ ")
            lines.append(f"{prefix}{branch}{describe(item)}")
            walk(key(item), prefix + ("" if not branch else ("   " if last else "│  ")), False)

    walk("", indent, True)
    return lines


def _describe(node: Node) -> str:
    parts = [node.name, f"[{node.type.value}]", node.status.value, _duration(node.duration_ns)]
    if node.run_root:
        parts.append(f"run {node.run_id}")
    if node.usage.total_tokens:
        parts.append(f"{node.usage.input_tokens} in / {node.usage.output_tokens} out tokens")
    if node.cost_usd:
        parts.append(f"${node.cost_usd:.4f}")
    if node.status_message:
        parts.append(f"error: {node.status_message}")
    return "  ".join(parts)


if __name__ == "__main__":
    sys.exit(main())

"""Expands a ClickHouse panel query the way Grafana and grafana-clickhouse-datasource (v4) do.

Order, as in the plugin: the front end replaces ``$__conditionalAll(condition, $var)`` (the
condition, or ``1=1`` when the variable selects All), then Grafana interpolates template
variables (``${var:singlequote}``, ``${var}``, ``$var``), then the back end expands its macros
(``$__timeFilter(col)``, ``$__dateFilter(col)``, ``$__timeInterval(col)``, ``$__fromTime``,
``$__toTime``, ``$__interval_s``, ...) with the expressions its Go code writes. Grafana itself
cannot run here, so this is the stand-in; it follows the plugin's source, and a macro it does
not know fails the test instead of passing through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

ALL = "$__all"


@dataclass
class Context:
    start: datetime
    end: datetime
    interval_s: int = 3600
    # variable name -> list of selected values, or ALL
    variables: dict[str, list[str] | str] = field(default_factory=dict)
    # every value of each variable, used when it selects All
    options: dict[str, list[str]] = field(default_factory=dict)


def _args(text: str, open_at: int) -> tuple[list[str], int]:
    """Top-level comma-separated arguments of the call whose '(' is at ``open_at``."""
    depth, args, current, i = 0, [], [], open_at
    while i < len(text):
        ch = text[i]
        if ch == "(":
            depth += 1
            if depth > 1:
                current.append(ch)
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append("".join(current))
                return args, i + 1
            current.append(ch)
        elif ch == "," and depth == 1:
            args.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    raise ValueError(f"unbalanced parentheses in {text[open_at : open_at + 80]!r}")


def conditional_all(sql: str, ctx: Context) -> str:
    macro = "$__conditionalAll("
    at = sql.rfind(macro)
    while at != -1:
        args, end = _args(sql, at + len(macro) - 1)
        assert len(args) == 2, args
        name = re.search(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+", args[1].strip())
        phrase = args[0]
        if name:
            value = ctx.variables.get(name.group(0), ALL)
            if value == ALL or value == "" or value == [ALL]:
                phrase = "1=1"
        sql = sql[:at] + phrase + sql[end:]
        at = sql.rfind(macro)
    return sql


def _values(name: str, ctx: Context) -> list[str]:
    value = ctx.variables.get(name, ALL)
    if value == ALL:
        return ctx.options.get(name, [])
    return [value] if isinstance(value, str) else list(value)


def _format(values: list[str], fmt: str | None) -> str:
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt == "queryparam":
        return "&".join(f"var-x={v}" for v in values)
    if fmt in (None, "raw", "csv"):
        return ",".join(values)
    raise ValueError(f"variable format {fmt} not handled")


def interpolate(sql: str, ctx: Context) -> str:
    def braced(m: re.Match) -> str:
        return _format(_values(m.group(1), ctx), m.group(2))

    sql = re.sub(r"\$\{(?!__)(\w+)(?::(\w+))?\}", braced, sql)
    return re.sub(r"\$(?!__)(\w+)", lambda m: _format(_values(m.group(1), ctx), None), sql)


def _to_datetime(t: datetime) -> str:
    return f"toDateTime({int(t.timestamp())})"


def _to_date(t: datetime) -> str:
    return f"toDate('{t.strftime('%Y-%m-%d')}')"


def backend_macros(sql: str, ctx: Context) -> str:
    def with_args(name: str, args: list[str]) -> str:
        col = args[0].strip() if args else ""
        if name == "timeFilter":
            return f"{col} >= {_to_datetime(ctx.start)} AND {col} <= {_to_datetime(ctx.end)}"
        if name == "dateFilter":
            return f"{col} >= {_to_date(ctx.start)} AND {col} <= {_to_date(ctx.end)}"
        if name == "timeInterval":
            return f"toStartOfInterval(toDateTime({col}), INTERVAL {max(ctx.interval_s, 1)} second)"
        raise ValueError(f"macro $__{name}() not known to this expander")

    bare = {
        "fromTime": _to_datetime(ctx.start),
        "toTime": _to_datetime(ctx.end),
        "interval_s": str(max(ctx.interval_s, 1)),
    }
    out, i = [], 0
    for m in re.finditer(r"\$__(\w+)", sql):
        if m.start() < i:
            continue
        out.append(sql[i : m.start()])
        name = m.group(1)
        if m.end() < len(sql) and sql[m.end()] == "(":
            args, end = _args(sql, m.end())
            out.append(with_args(name, args))
            i = end
        elif name in bare:
            out.append(bare[name])
            i = m.end()
        else:
            raise ValueError(f"macro $__{name} not known to this expander")
    out.append(sql[i:])
    return "".join(out)


def expand(sql: str, ctx: Context) -> str:
    return backend_macros(interpolate(conditional_all(sql, ctx), ctx), ctx)

"""SQL text from the engine normalizer's own constants: attribute names, convention tables,
node types. Never from a span's values: those reach the engine as data (the staged spans) or as
bound parameters.

A literal is quoted by :func:`quote`, the one place that escapes text for the engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def array(values: Iterable[str]) -> str:
    return "[" + ", ".join(quote(v) for v in values) + "]"


def get(map_expr: str, key: str) -> str:
    return f"{map_expr}[{quote(key)}]"


def first_nonempty(values: Sequence[str]) -> str:
    """The first of ``values`` that is not empty, else ''. Written out, not as a lambda over a
    key list: a lambda that reads a column (``arrayMap(k -> attrs[k], ...)``) makes the engine
    copy the column once per key, which cost about half of the normalizing statement."""
    *rest, last = values
    nulled = ", ".join(f"nullIf({v}, '')" for v in rest)
    return f"coalesce({nulled}, {last})" if rest else last


def first(map_expr: str, keys: Sequence[str]) -> str:
    """The first non-empty value among ``keys`` (``normalize._first``)."""
    return first_nonempty([get(map_expr, k) for k in keys])


def both(key: str) -> str:
    """A key of the span's attributes, else of its resource's (``both`` in the normalizer)."""
    return f"if(mapContains(attrs, {quote(key)}), {get('attrs', key)}, {get('res', key)})"


def first_both(keys: Sequence[str]) -> str:
    return first_nonempty([both(k) for k in keys])


def literal(value: str | float) -> str:
    return quote(value) if isinstance(value, str) else repr(value)


def lookup(expr: str, table: Mapping[Any, str | float], default: str | float, array_type: str = "") -> str:
    """``table.get(expr, default)`` for a small table of literals (``array_type`` casts the
    values, where numbers of mixed spelling would not share a type)."""
    if not table:
        return literal(default)
    keys = ", ".join(literal(k) for k in table)
    values = ", ".join(literal(v) for v in table.values())
    cast = f"::Array({array_type})" if array_type else ""
    return f"transform({expr}, [{keys}], [{values}]{cast}, {literal(default)})"


def strip(expr: str) -> str:
    return f"trim(BOTH ' \\t\\n\\r\\f\\v' FROM {expr})"


def removeprefix(expr: str, prefix: str) -> str:
    return f"if(startsWith({expr}, {quote(prefix)}), substring({expr}, {len(prefix) + 1}), {expr})"

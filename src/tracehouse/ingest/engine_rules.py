"""The conventions' rules (:mod:`tracehouse.conventions`) compiled into the engine's SQL.

Each expression of a rule becomes the SQL expression that computes the same value over the
staged spans of :mod:`tracehouse.ingest.engine_input`: ``attrs`` and ``res`` are the span's and
its resource's attribute maps, and the fields computed before a rule are columns of a lower
layer of the normalizing statement (:data:`FIELDS`). Only the rules' own constants (attribute
names, table entries) become SQL literals, through :mod:`tracehouse.ingest.sql_text`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import singledispatch

from tracehouse import conventions as c
from tracehouse.ingest.sql_text import both, first_nonempty, get, literal, lookup, quote, removeprefix, strip
from tracehouse.model import MAX_TOKENS

# A rule's field -> the column of the normalizing statement that holds it.
FIELDS = {"name": "name", "status_code": "status_code", "type": "NodeType", "run_root": "RunRoot"}


def compile_rule(rule: c.Term | c.Condition, fields: Mapping[str, str] = FIELDS) -> str:
    """The SQL expression of ``rule``."""
    return _sql(rule, fields)


@singledispatch
def _sql(rule: object, fields: Mapping[str, str]) -> str:
    raise TypeError(f"no SQL for {type(rule).__name__}")


@_sql.register
def _(rule: c.Const, fields: Mapping[str, str]) -> str:
    return quote(rule.value)


@_sql.register
def _(rule: c.Attr, fields: Mapping[str, str]) -> str:
    return both(rule.key) if rule.resource else get("attrs", rule.key)


@_sql.register
def _(rule: c.Field, fields: Mapping[str, str]) -> str:
    return fields[rule.name]


@_sql.register
def _(rule: c.First, fields: Mapping[str, str]) -> str:
    return first_nonempty([_sql(t, fields) for t in rule.terms])


@_sql.register
def _(rule: c.Upper, fields: Mapping[str, str]) -> str:
    return f"upper({_sql(rule.term, fields)})"


@_sql.register
def _(rule: c.Lower, fields: Mapping[str, str]) -> str:
    return f"lower({_sql(rule.term, fields)})"


@_sql.register
def _(rule: c.Strip, fields: Mapping[str, str]) -> str:
    return strip(_sql(rule.term, fields))


@_sql.register
def _(rule: c.RemovePrefix, fields: Mapping[str, str]) -> str:
    return removeprefix(_sql(rule.term, fields), rule.prefix)


@_sql.register
def _(rule: c.Lookup, fields: Mapping[str, str]) -> str:
    return lookup(_sql(rule.term, fields), rule.table, rule.default)


@_sql.register
def _(rule: c.Cases, fields: Mapping[str, str]) -> str:
    branches = ", ".join(f"{_sql(cond, fields)}, {_sql(value, fields)}" for cond, value in rule.cases)
    return f"multiIf({branches}, {_sql(rule.default, fields)})"


@_sql.register
def _(rule: c.TokenCount, fields: Mapping[str, str]) -> str:
    parsed = [f"ifNull(toFloat64OrNull({get('attrs', k)}), nan)" for k in rule.keys]
    first = f"multiIf({', '.join(f'isFinite({v}), {v}' for v in parsed)}, 0.)"  # computed once: the engine shares it
    return f"if({first} BETWEEN 0 AND {MAX_TOKENS}, toUInt64(trunc({first})), 0)"


@_sql.register
def _(rule: c.NonEmpty, fields: Mapping[str, str]) -> str:
    return f"({_sql(rule.term, fields)} != '')"


@_sql.register
def _(rule: c.Equals, fields: Mapping[str, str]) -> str:
    return f"({_sql(rule.term, fields)} = {literal(rule.value)})"


@_sql.register
def _(rule: c.OneOf, fields: Mapping[str, str]) -> str:
    return f"({_sql(rule.term, fields)} IN ({', '.join(quote(k) for k in rule.table)}))"


@_sql.register
def _(rule: c.HasAttr, fields: Mapping[str, str]) -> str:
    return f"mapContains(attrs, {quote(rule.key)})"


@_sql.register
def _(rule: c.IsTrue, fields: Mapping[str, str]) -> str:
    return fields[rule.name]


@_sql.register
def _(rule: c.All, fields: Mapping[str, str]) -> str:
    return "(" + " AND ".join(_sql(x, fields) for x in rule.conditions) + ")"


@_sql.register
def _(rule: c.AnyOf, fields: Mapping[str, str]) -> str:
    return "(" + " OR ".join(_sql(x, fields) for x in rule.conditions) + ")"


@_sql.register
def _(rule: c.Not, fields: Mapping[str, str]) -> str:
    return f"(NOT {_sql(rule.condition, fields)})"

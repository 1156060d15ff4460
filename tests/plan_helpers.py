"""Reading the engine's own query plan: which table columns a query reads."""

from __future__ import annotations

import re


def columns_read(store, sql: str, params: dict | None = None) -> set[str]:
    """The table columns a query reads, from the engine's own query plan."""
    plan = "\n".join(row[0] for row in store.query(f"EXPLAIN actions = 1 {sql}", params or {}))
    read: set[str] = set()
    for match in re.finditer(r"^\s*(?:Output|Lazily read columns): (.*)$", plan, re.MULTILINE):
        read.update(col.strip() for col in match.group(1).split(","))
    assert read, plan  # the plan format is what we expect, or this helper must change
    return {c for c in read if not c.startswith("_")}

"""Docs that quote the code stay true to it."""

from __future__ import annotations

from pathlib import Path

from tracehouse.store import migrations
from tracehouse.store.schema import Layout

ROOT = Path(__file__).resolve().parents[1]


def test_schema_doc_carries_the_current_ddl():
    doc = (ROOT / "docs" / "schema.md").read_text()
    ddl = ";\n\n".join(migrations.all_statements(Layout())) + ";"
    assert f"```sql\n{ddl}\n```" in doc, "regenerate the DDL block of docs/schema.md with `tracehouse schema`"


def test_every_image_the_docs_show_is_there():
    import re

    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", doc.read_text()):
            assert (doc.parent / target).is_file(), f"{doc.name} shows {target}, which is missing"

"""The generated catalog reference matches the committed docs/catalog.md."""

from pathlib import Path

from engine.catalog import Catalog
from engine.catalog.docs import catalog_markdown


def test_markdown_covers_every_indicator():
    cat = Catalog.load()
    md = catalog_markdown(cat)
    assert md.count("\n| `") >= len(cat)  # one row per indicator (plus feeds and departments)
    for dom in cat.domains.values():
        assert f"## {dom['name_zh']} {dom['name_en']}" in md


def test_committed_reference_is_current():
    committed = Path(__file__).resolve().parents[1] / "docs" / "catalog.md"
    assert committed.read_text(encoding="utf-8") == catalog_markdown(Catalog.load()), (
        "docs/catalog.md is stale: run `cityvitals catalog docs --out docs/catalog.md`"
    )

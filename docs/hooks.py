"""MkDocs hooks: one generated page per zoo preset, and the all-presets table on models.md.

The cards come from :mod:`tympan.models.cards`; nothing about a preset is typed into the docs by hand.
"""

from __future__ import annotations

from typing import Any

from mkdocs.structure.files import File, Files

from tympan.models.cards import build_cards, render_card, render_table

_MARKER = "<!-- tympan:models-table -->"
_cards: list[Any] = []


def on_files(files: Files, config: Any) -> Files:
    """Add ``models/<preset>.md`` for every preset (measured once per build, from the complexity cache)."""
    _cards[:] = build_cards()
    for card in _cards:
        files.append(File.generated(config, f"models/{card.name}.md", content=render_card(card)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Put the sortable table of every preset where models.md has its marker."""
    if _MARKER not in markdown:
        return markdown
    return markdown.replace(_MARKER, render_table(_cards, link="models/{name}.html"))

"""Model cards: every preset has a complete card, generated from the registry with reproducible counts."""

from __future__ import annotations

import json
import re

import pytest

from tympan.models import get_preset, list_models
from tympan.models.cards import (
    COMPLEXITY_FILE,
    _fingerprint,
    build_cards,
    complexity_table,
    measure_preset,
    render_card,
    render_table,
)


@pytest.fixture(scope="module")
def cards():
    return {card.name: card for card in build_cards()}


def test_the_complexity_cache_is_current() -> None:
    cache = json.loads(COMPLEXITY_FILE.read_text())
    stale = [n for n in list_models() if cache.get(n, {}).get("fingerprint") != _fingerprint(get_preset(n))]
    assert not stale, f"run `python -m tympan.models.cards --refresh` to count {stale}"


def test_every_preset_has_a_complete_card(cards) -> None:
    assert sorted(cards) == list_models()
    incomplete = {name: card.missing() for name, card in cards.items() if card.missing()}
    assert not incomplete, f"add the missing facts to the zoo entries: {incomplete}"


def test_counted_parameters_are_the_published_ones(cards) -> None:
    table = complexity_table()
    for name in list_models():
        published = get_preset(name).num_params
        assert published is None or table[name].params == published, name


def test_the_cache_holds_what_the_counter_measures() -> None:
    entry = get_preset("cp_mobile_dcase23")
    measured = measure_preset(entry)
    assert measured == complexity_table([entry.name])[entry.name]
    assert dict(measured.macs) == {"full": 28_889_088, "dcase": entry.macs}  # the challenge's figure, exactly


def test_a_card_says_what_a_user_needs(cards) -> None:
    card = cards["cp_mobile_dcase23"]
    page = render_card(card)
    assert card.multi_label.startswith("no")
    assert cards["fsd50k_passt_s_f128_p16_s10_ap655"].multi_label.startswith("yes")
    assert "for one 1 s clip (256 mels × 64 frames)" in card.macs and "`dcase` rule" in card.macs
    assert "<td>9</td><td>tram</td>" in page and 'tympan.load("cp_mobile_dcase23")' in page
    assert len(card.usage.splitlines()) == 3
    assert "500 samples (15.625 ms, 64 frames/s)" in dict(card.frontend)["hop"]
    assert "checkpoint=" in cards["cp_mobile_dcase24_baseline"].usage  # no official weights


def test_the_table_has_a_sortable_row_per_preset(cards) -> None:
    table = render_table(list(cards.values()))
    assert table.count("<tr><td>") == len(list_models())
    row = re.search(r"<tr><td><a href=\"mn10_as.md\">.*?</tr>", table).group(0)
    assert 'data-sort="541078208"' in row and 'data-sort="0.471"' in row

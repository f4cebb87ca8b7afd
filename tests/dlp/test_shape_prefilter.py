"""The pre-filters of the numeric detectors (`_Text.shape`, and the card detector's windows of
`_Text.dense_runs`) only save time: on random texts dense in digits, separators, capitals and
non-ASCII digits, the scan finds exactly what the same detectors find from every digit run, on
whole texts and on a growing one, short and long (windows, and matches across their edges)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from app.dlp.detector import ProfileSetDetector, _Compiled, detector_for
from app.dlp.profiles import DENSE_WINDOW, PROFILES

ALL = detector_for(frozenset(PROFILES))
PIECES = [
    "4111", "1111", "123", "45", "6789", "415", "555", "2671", "DE89", "3704", "0044", "0532", "0130",
    "00", "GB", "9", "7", "٣", "١٢", " ", " ", "-", "-", ".", "(", ")", "x", "é", "SSN ", "\n", "AB",
    "DE89370400440532013000", "GB82 WEST 1234 5698 7654 32", "415-555-2671", "415.555.2671",
]  # fmt: skip


def _unfiltered() -> ProfileSetDetector:
    reference = ProfileSetDetector(ALL.profile_ids)
    reference._compiled = [  # every digit run a candidate, as before the pre-filter
        _Compiled(dataclasses.replace(c.detector, shapes=(), shape_starts=False, dense=0))
        for c in ALL._compiled
    ]
    return reference


def _texts(seed: int, count: int, pieces: int = 60) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, pieces))) for _ in range(count)]


@pytest.mark.parametrize("seed", range(4))
def test_the_filtered_scan_equals_the_unfiltered_one(seed: int) -> None:
    reference = _unfiltered()
    texts = _texts(seed, 300)
    assert any(ALL.scan(text) for text in texts)  # the samples do hold findings
    for text in texts:
        assert sorted(map(repr, ALL.scan(text))) == sorted(map(repr, reference.scan(text))), text


def test_a_growing_text_finds_the_same_with_and_without_the_filter() -> None:
    reference = _unfiltered()
    text = " | ".join([t for t in _texts(99, 200) if ALL.scan(t)][:40])
    found: dict[str, list[str]] = {}
    for name, detector in (("filtered", ALL), ("unfiltered", reference)):
        positions, matches = [0] * detector.size, []
        for end in range(0, len(text) + 1, 7):
            new, positions = detector.scan_from(text[:end], positions, max(end - 300, 0))
            matches += new
        new, _ = detector.scan_from(text, positions, len(text) + 300)
        found[name] = sorted(map(repr, matches + new))
    assert found["filtered"] == sorted(map(repr, ALL.scan(text)))
    assert found["filtered"] and found["filtered"] == found["unfiltered"]


@pytest.mark.parametrize("seed", range(3))
def test_long_texts_find_the_same_across_the_windows(seed: int) -> None:
    reference = _unfiltered()
    texts = _texts(100 + seed, 20, pieces=1500)  # several DENSE_WINDOWs each
    assert sum(len(ALL.scan(text)) for text in texts) > 100
    for text in texts:
        assert sorted(map(repr, ALL.scan(text))) == sorted(map(repr, reference.scan(text)))


@pytest.mark.parametrize(
    "card", ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "378282246310005"]
)
def test_a_card_is_found_at_every_offset_around_a_window_edge(card: str) -> None:
    dates = "2024-03-15 10:42:07, 1532.75, id 8613358\n" * 10  # dense in digits, no card
    assert not ALL.scan(dates)
    for offset in range(DENSE_WINDOW - 40, DENSE_WINDOW + 2):
        text = (dates * 2)[:offset] + "," + card + "," + dates  # not a space: that joins digit groups
        found = [m for m in ALL.scan(text) if m.entry_id.startswith("credit_card")]
        assert [(m.start, m.end) for m in found] == [(offset + 1, offset + 1 + len(card))], offset

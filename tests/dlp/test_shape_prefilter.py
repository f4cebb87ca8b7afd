"""The shape pre-filter of the numeric detectors (`_Text.shape`) only saves time: on random texts
dense in digits, separators, capitals and non-ASCII digits, the scan finds exactly what the same
detectors find from every digit run, on whole texts and on a growing one."""

from __future__ import annotations

import dataclasses
import random

import pytest

from app.dlp.detector import ProfileSetDetector, _Compiled, detector_for
from app.dlp.profiles import PROFILES

ALL = detector_for(frozenset(PROFILES))
PIECES = [
    "4111", "1111", "123", "45", "6789", "415", "555", "2671", "DE89", "3704", "0044", "0532", "0130",
    "00", "GB", "9", "7", "٣", "١٢", " ", " ", "-", "-", ".", "(", ")", "x", "é", "SSN ", "\n", "AB",
    "DE89370400440532013000", "GB82 WEST 1234 5698 7654 32", "415-555-2671", "415.555.2671",
]  # fmt: skip


def _unfiltered() -> ProfileSetDetector:
    reference = ProfileSetDetector(ALL.profile_ids)
    reference._compiled = [  # every digit run a candidate, as before the pre-filter
        _Compiled(dataclasses.replace(c.detector, shapes=(), shape_starts=False)) for c in ALL._compiled
    ]
    return reference


def _texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 60))) for _ in range(count)]


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

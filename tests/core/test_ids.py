"""The fast ULID generator against python-ulid's reading of its output."""

from __future__ import annotations

import time

import pytest
from ulid import ULID

from app.core.ids import UlidGenerator, _encode_random, _encode_time, new_ulid


def test_ids_are_ulids_of_now() -> None:
    before = time.time()
    value = new_ulid()
    after = time.time()
    parsed = ULID.from_str(value)
    assert str(parsed) == value and len(value) == 26
    assert before - 0.002 <= parsed.timestamp <= after + 0.002


def test_ids_are_unique_and_sorted_in_creation_order() -> None:
    ids = [new_ulid() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)


def test_same_millisecond_counts_up_and_carries_into_the_time() -> None:
    generator = UlidGenerator()
    first = ULID.from_str(generator.new())
    generator._random = (1 << 80) - 1  # the last random value of this millisecond
    generator._ms = first.milliseconds + 10_000  # and a clock that stepped back 10 s
    carried = ULID.from_str(generator.new())
    assert carried.milliseconds == first.milliseconds + 10_001
    after = ULID.from_str(generator.new())
    assert int(after) == int(carried) + 1


@pytest.mark.parametrize(
    ("ms", "randomness"),
    [(0, 0), (1, 1), ((1 << 48) - 1, (1 << 80) - 1), (1_790_000_000_123, 0x1234_5678_9ABC_DEF0_1234)],
)
def test_encoding_matches_python_ulid_bit_for_bit(ms: int, randomness: int) -> None:
    assert _encode_time(ms) + _encode_random(randomness) == str(ULID.from_int(ms << 80 | randomness))

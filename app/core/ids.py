"""Log ids: ULIDs (26 Crockford base32 characters: 48-bit millisecond time, then 80 random bits).

Made here rather than with `python-ulid`'s `ULID()`: an id is minted for every request, and that
constructor (object, policy and validation layers) showed up at ~3 % of the gateway's CPU in
profiles; this is a few table lookups. `tests/core/test_ids.py` checks the output against python-ulid.
Ids are monotonic within a process: within one millisecond the random part counts up, so ids sort
in the order they were made (the logs API orders by id).
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every 10-bit value as its two base32 characters.
_PAIRS = [_ALPHABET[value >> 5] + _ALPHABET[value & 31] for value in range(1024)]
_RANDOM_MAX = (1 << 80) - 1
_TIME_MAX = (1 << 48) - 1


def _encode_time(ms: int) -> str:
    """10 characters: 2 zero bits and the 48-bit time."""
    p = _PAIRS
    return p[ms >> 40] + p[(ms >> 30) & 1023] + p[(ms >> 20) & 1023] + p[(ms >> 10) & 1023] + p[ms & 1023]


def _encode_random(r: int) -> str:
    """16 characters: the 80 random bits."""
    p = _PAIRS
    return (
        p[r >> 70] + p[(r >> 60) & 1023] + p[(r >> 50) & 1023] + p[(r >> 40) & 1023]
        + p[(r >> 30) & 1023] + p[(r >> 20) & 1023] + p[(r >> 10) & 1023] + p[r & 1023]
    )  # fmt: skip


class UlidGenerator:
    __slots__ = ("_ms", "_prefix", "_random")

    def __init__(self) -> None:
        self._ms = -1
        self._prefix = ""
        self._random = 0

    def new(self) -> str:
        ms = time.time_ns() // 1_000_000
        if ms > self._ms:
            self._ms, self._prefix = ms, _encode_time(ms & _TIME_MAX)
            self._random = int.from_bytes(os.urandom(10))
        elif self._random < _RANDOM_MAX:
            # Same millisecond, or the clock stepped back: keep the order by counting up.
            self._random += 1
        else:  # 2^80 ids in one millisecond: borrow the next millisecond
            self._ms += 1
            self._prefix = _encode_time(self._ms & _TIME_MAX)
            self._random = int.from_bytes(os.urandom(10))
        return self._prefix + _encode_random(self._random)


new_ulid = UlidGenerator().new


def new_log_id() -> str:
    """A request's log id (also its event id when the client gives none)."""
    return new_ulid()


_CROCKFORD = frozenset(_ALPHABET + _ALPHABET.lower())
_HEX = frozenset("0123456789abcdefABCDEF")
_UUID_DASHES = (8, 13, 18, 23)


def canonical_log_id(text: str) -> str | None:
    """The stored form (upper-case ULID) of a log id given as a ULID (any case) or as a canonical
    UUID (8-4-4-4-12 hex, any case: the same 128 bits, the form the hosted service now mints);
    None for anything else, which then names no log."""
    if len(text) == 26 and text[0] in "01234567" and _CROCKFORD.issuperset(text):
        return text.upper()
    if len(text) != 36 or any(text[i] != "-" for i in _UUID_DASHES):
        return None
    digits = text.replace("-", "")
    if len(digits) != 32 or not _HEX.issuperset(digits):
        return None
    value = int(digits, 16)
    return _encode_time(value >> 80) + _encode_random(value & _RANDOM_MAX)

"""The detector of a set of profiles, and the matches it finds: spans of the scanned text (the
value, when a pattern marks one: the word before a bare SSN is context, not the secret) with the
entry each is. The same scan serves whole bodies and, with `decided_before`, a growing stream.

Cost is linear in the text: each detector skips to its anchors (substring search) or to the
characters its pattern can start with, and only there runs its bounded pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from app.dlp.profiles import DENSE_MAX_CHARS, DENSE_WINDOW, DIGIT_RUNS, PROFILES, Detector

# The shape of a text: ASCII capitals become `A`, digits `0` (one character each, so positions
# keep). `\d` in the patterns is any Unicode decimal digit, so those map to `0` as well.
_ASCII_SHAPE = str.maketrans("BCDEFGHIJKLMNOPQRSTUVWXYZ123456789", "A" * 25 + "0" * 9)
_NO_SEPARATORS = str.maketrans("", "", " -")


class _Text:
    """A text being scanned, with what several detectors look up in it computed once."""

    __slots__ = ("_runs", "_shape", "folded", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.folded = _fold(text)
        self._runs: list[int] | None = None
        self._shape: str | None = None

    def shape(self) -> str:
        """One C pass (`str.translate`), then numeric shapes are plain substring searches."""
        if self._shape is None:
            text, table = self.text, _ASCII_SHAPE
            if not text.isascii():
                extra = {ord(c): 48 for c in set(text) if c > "\x7f" and c.isdecimal()}  # 48: "0"
                table = {**_ASCII_SHAPE, **extra} if extra else table
            self._shape = text.translate(table)
        return self._shape

    def digit_runs(self) -> list[int]:
        """Where runs of ASCII digits start: ten substring searches, then a sort."""
        if self._runs is None:
            self._runs = self._runs_in(0, len(self.text))
        return self._runs

    def _runs_in(self, start: int, end: int) -> list[int]:
        text, found = self.text, []
        for digit in "0123456789":
            at = text.find(digit, start, end)
            while at >= 0:
                if at == 0 or not "0" <= text[at - 1] <= "9":
                    found.append(at)
                at = text.find(digit, at + 1, end)
        found.sort()
        return found

    def dense_runs(self, pos: int, digits: int) -> list[int]:
        """The digit runs at `pos` or later in the windows of the text that hold `digits` digits in
        a row once spaces and dashes are deleted (each window seen with the text a match starting
        in it can reach). Without any such window, one pass over the shape answers."""
        shape, zeros = self.shape(), "0" * digits
        if zeros not in shape[pos:].translate(_NO_SEPARATORS):
            return []
        found: list[int] = []
        for start in range(pos, len(shape), DENSE_WINDOW):
            end = start + DENSE_WINDOW
            if zeros in shape[start : end + DENSE_MAX_CHARS].translate(_NO_SEPARATORS):
                found += self._runs_in(start, end)
        return found


@dataclass(frozen=True, slots=True)
class Match:
    entry_id: str
    start: int
    end: int


class _Compiled:
    __slots__ = ("back", "detector", "local", "pattern", "value")

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.pattern = re.compile(detector.pattern, re.IGNORECASE if detector.fold else 0)
        self.value = "v" if "(?P<v>" in detector.pattern else None
        self.back = detector.back
        local = re.compile(f"[{detector.local}]") if detector.local else None
        self.local = frozenset(chr(c) for c in range(128) if local is not None and local.match(chr(c)))

    def _starts(self, scanned: _Text, pos: int) -> list[int]:
        """Where, at `pos` or later, a match of an anchored detector may start."""
        text = scanned.text
        if self.detector.anchors is DIGIT_RUNS:
            detector = self.detector
            lead = detector.lead
            if detector.dense:
                return scanned.dense_runs(pos, detector.dense)
            if detector.shape_starts:
                return self._shape_starts(scanned, pos)
            if detector.shapes:  # every match holds a shape: none from `pos` on, no match
                shape = scanned.shape()
                if all(shape.find(literal, pos) < 0 for literal in detector.shapes):
                    return []
            return [at - lead for at in scanned.digit_runs() if at - lead >= pos]
        haystack = scanned.folded if self.detector.fold else text
        found: list[int] = []
        for anchor in self.detector.anchors:
            at = haystack.find(anchor, pos)
            while at >= 0:
                start = self._back_to_start(text, at) if self.back else at
                if start is not None:
                    found.append(start)
                at = haystack.find(anchor, at + 1)
        found.sort()
        return found

    def _shape_starts(self, scanned: _Text, pos: int) -> list[int]:
        """The occurrences of the shapes at `pos` or later whose digit (after `lead` letters) starts
        a run of ASCII digits: the same candidates the digit runs give, minus those that cannot match."""
        text, shape, lead = scanned.text, scanned.shape(), self.detector.lead
        found: list[int] = []
        for literal in self.detector.shapes:
            at = shape.find(literal, pos)
            while at >= 0:
                digit = at + lead
                if "0" <= text[digit] <= "9" and (digit == 0 or not "0" <= text[digit - 1] <= "9"):
                    found.append(at)
                at = shape.find(literal, at + 1)
        if len(self.detector.shapes) > 1:
            found.sort()
        return found

    def _back_to_start(self, text: str, anchor_at: int) -> int | None:
        """Email: the start of the local part before `@`, or None when it is empty or too long."""
        start, floor = anchor_at, max(0, anchor_at - self.back - 1)
        while start > floor and text[start - 1] in self.local:
            start -= 1
        if start == anchor_at or anchor_at - start > self.back:
            return None
        return start

    def scan(self, scanned: _Text, pos: int, limit: int) -> tuple[list[Match], int]:
        """Matches starting in [pos, limit), and where to resume: `limit`, or past the last match.
        An anchored detector's position is its anchor's (an email's `@` comes after its start)."""
        found: list[Match] = []
        text = scanned.text
        end = min(limit, len(text))
        if self.detector.anchors:
            done = pos
            for start in self._starts(scanned, pos):
                if start >= limit - self.back:
                    return found, max(done, limit)
                if start < done:
                    continue  # inside the previous match
                hit = self.pattern.match(text, start)
                if hit is not None and self._add(hit, text, found):
                    done = hit.end()
            return found, max(done, end)
        search = self.pattern.search
        while pos < limit:
            hit = search(text, pos)
            if hit is None or hit.start() >= limit:
                break
            pos = hit.end() if self._add(hit, text, found) else hit.start() + 1
        return found, max(pos, end)

    def _add(self, hit: re.Match[str], text: str, found: list[Match]) -> bool:
        start, end = hit.span(self.value) if self.value is not None else hit.span()
        entry: str | None = self.detector.entry_id
        if self.detector.classify is not None:
            entry = self.detector.classify(text[start:end])
        if entry is None:
            return False  # a look-alike: something else may still start just after its start
        found.append(Match(entry, start, end))
        return True


class ProfileSetDetector:
    """The compiled detectors of a set of profiles (cached: policies share them)."""

    __slots__ = ("_compiled", "profile_ids")

    def __init__(self, profile_ids: tuple[str, ...]) -> None:
        self.profile_ids = profile_ids
        self._compiled = [_Compiled(d) for pid in profile_ids for d in PROFILES[pid].detectors]

    @property
    def size(self) -> int:
        return len(self._compiled)

    def scan(self, text: str) -> list[Match]:
        """Every match in a whole text, in order of position."""
        scanned = _Text(text)
        found: list[Match] = []
        for compiled in self._compiled:
            found += compiled.scan(scanned, 0, len(text) + 1 + compiled.back)[0]
        found.sort(key=lambda m: m.start)
        return found

    def scan_from(
        self, text: str, positions: list[int], decided_before: int
    ) -> tuple[list[Match], list[int]]:
        """A growing text: each detector resumes at its own position and reports only matches that
        start before `decided_before` (the text after it is not all there yet, so a match starting
        there could still grow); it returns the positions to resume at."""
        scanned = _Text(text)
        found: list[Match] = []
        resumed: list[int] = []
        for compiled, pos in zip(self._compiled, positions, strict=True):
            matches, pos = compiled.scan(scanned, pos, decided_before)
            found += matches
            resumed.append(pos)
        return found, resumed


def _fold(text: str) -> str:
    """The text lower-cased for case-insensitive anchors, when that keeps every position (a few
    non-ASCII letters change length when lowered: then the original is searched, which misses
    only anchors spelled with capitals in such a text)."""
    folded = text.lower()
    return folded if len(folded) == len(text) else text


@lru_cache(maxsize=256)
def detector_for(profile_ids: frozenset[str]) -> ProfileSetDetector:
    return ProfileSetDetector(tuple(sorted(profile_ids)))

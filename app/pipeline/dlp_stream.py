"""A relayed stream under a response DLP policy: events are held back until HOLDBACK characters
of text have arrived after them (or the stream ended), so every match that touches an event is
known before the event is sent, and no part of a blocked match ever reaches the client.

The text of each event (`app/dlp/stream_text.py`) is fed in order to the detectors, which decide
matches only where the text after them is all there. A BLOCK ends the stream: before anything
was sent, as the plain 400 / 2030 answer (`prime`); after, as one terminal error event. The log
gets each event redacted, as it is released or when the stream ends.

A compat step's stream (`TranslatedDlpStream`) is translated here, event by event, before it is
scanned and held back: what is scanned is what the client gets (dlp.md §3). Each upstream event
is held with its translation; the cache copy and the log keep the upstream's events, as they do
for every stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from app.core.errors import ErrorContext, ResponseBlockedByDlp
from app.core.sse import SSEEventTooLarge
from app.dlp.detector import Match, ProfileSetDetector
from app.dlp.extract import Extracted
from app.dlp.profiles import DECISION_CHARS
from app.dlp.stream_text import event_text
from app.pipeline.dlp import RequestDlp
from app.pipeline.stream import BROKEN, UpstreamStream
from app.pipeline.types import ComposedStream
from app.providers.compat.base import StreamTranslator
from app.providers.usage import loads_or_none

_KEEP_BEFORE = 80  # text kept before the detectors' positions: look-behinds, an email's local part


@dataclass(slots=True)
class _Held:
    raw: bytes  # the event as the upstream sent it, with its blank line (what the log keeps)
    name: bytes | None
    extracted: Extracted | None  # the text of `raw`
    start: int  # the span in the stream's text of the text the client gets for it
    end: int
    out: bytes  # what the client gets for it: `raw`, or its translation (perhaps nothing)
    same_text: bool = True  # `extracted` is the client's text, so match positions carry over


class DlpStream(UpstreamStream):
    """Built like `UpstreamStream`, then `with_dlp` before `prime`."""

    def with_dlp(
        self, dlp: RequestDlp, holdback: int, context: ErrorContext,
        translator: StreamTranslator | None = None,
    ) -> DlpStream:  # fmt: skip
        """`translator`: a compat step's, whose output is what is held back, scanned and sent."""
        detector = dlp.config.response
        assert detector is not None
        self._dlp, self._context = dlp, context
        self._translator = translator
        # The cache keeps the upstream's headers, not the `cf-aig-dlp` the run adds to the
        # client's: a hit is not checked (dlp.md §4), so it carries no finding of this answer.
        self._headers = list(self._headers)
        self._detector: ProfileSetDetector = detector
        self._holdback = max(holdback, DECISION_CHARS)
        self._positions = [0] * detector.size
        self._text, self._base, self._total = "", 0, 0
        self._raw = b""
        self._head = b""  # the events as the log keeps them (redacted), up to its body limit
        self._held: deque[_Held] = deque()
        self._ready: deque[bytes] = deque()
        self._matches: list[Match] = []
        self._eof = False
        self._upstream = self._response.aiter_bytes()
        return self

    async def prime(self) -> None:
        """Read until the first event may go out (headers go with it), the stream ends, or a BLOCK."""
        try:
            while not self._ready and not self._eof:
                await self._pull()
        except BROKEN as exc:
            raise await self._cut(exc) from None

    async def _relay(self) -> AsyncIterator[bytes]:
        try:
            while True:
                while self._ready:
                    yield self._ready.popleft()
                if self._eof:
                    break
                await self._pull()
        except BROKEN as exc:
            raise await self._cut(exc) from None
        await self._end(self._chunks, None)

    async def _pull(self) -> None:
        try:
            chunk = await self._upstream.__anext__()
        except StopAsyncIteration:
            self._eof = True
            if self._raw.strip():
                self._add_event(self._raw + b"\n\n")
            self._raw = b""
            if self._translator is not None:  # what ends the OpenAI stream: finish, usage, [DONE]
                self._hold(b"", None, None, self._translator.close())
            await self._decide(None)
            return
        self._observe(chunk)
        await self._decide(self._total - self._holdback)

    def _observe(self, chunk: bytes) -> None:
        """Usage, the cache copy and the size as the base does; events into the hold-back."""
        record = self._record
        record.response_size += len(chunk)
        if self._chunks is not None:
            self._kept += len(chunk)
            if self._kept > self._keep_up_to:
                self._chunks = None  # too large to cache; stop copying
            else:
                self._chunks.append(chunk)
        raw = self._raw + chunk
        if b"\r" in raw:
            raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        start = 0
        while (end := raw.find(b"\n\n", start)) >= 0:
            self._add_event(raw[start : end + 2])
            start = end + 2
        self._raw = raw[start:]
        if len(self._raw) > self._splitter_limit():
            raise SSEEventTooLarge("an event larger than the limit")

    def _splitter_limit(self) -> int:
        return self._splitter._limit or 1 << 62

    def _add_event(self, raw: bytes) -> None:
        name, data = _parse(raw)
        if data is not None and b"sage" in data:
            self._usage.absorb(loads_or_none(data))
        extracted = event_text(data) if data is not None else None
        out = raw if self._translator is None else self._translator.feed(raw)
        self._hold(raw, name, extracted, out)

    def _hold(self, raw: bytes, name: bytes | None, extracted: Extracted | None, out: bytes) -> None:
        own = extracted.text if extracted is not None else ""
        text = own if out is raw else _text_of(out)
        start = self._total
        self._text += text
        self._total += len(text)
        same = out is raw or own == text
        self._held.append(_Held(raw, name, extracted, start, self._total, out, same))

    async def _decide(self, decided_before: int | None) -> None:
        """Scan what is decidable, stop on a BLOCK, release the events all of whose matches are known."""
        limit = self._total + DECISION_CHARS + 1 if decided_before is None else decided_before
        base = self._base
        found, positions = self._detector.scan_from(
            self._text, [p - base for p in self._positions], max(limit - base, 0)
        )
        self._positions = [p + base for p in positions]
        matches = [Match(m.entry_id, m.start + base, m.end + base) for m in found]
        if matches:
            self._matches += matches
            if self._dlp.findings.add("RESPONSE", matches):
                await self._block()
            self._dlp.record_findings(self._record)
        while self._held and (decided_before is None or self._held[0].end <= decided_before):
            self._release(self._held.popleft())
        cut = min(self._positions) - _KEEP_BEFORE - base
        if cut > 4096:  # drop text the detectors are done with, in large steps
            self._text, self._base = self._text[cut:], base + cut

    def _log_copy(self) -> bytes | None:
        """The redacted events, for the rows of this stream's cache hits (which may keep payloads
        where this row does not)."""
        return self._head if self._dlp.findings.has("RESPONSE") else None

    def _release(self, held: _Held, send: bool = True) -> None:
        self._head = self._log_head(held)
        if self._record.keep_payload:
            self._record.response_head = self._head
        if send and held.out:
            self._ready.append(held.out)
        self._matches = [m for m in self._matches if m.end > held.end]

    def _log_head(self, held: _Held) -> bytes:
        overlapping = [m for m in self._matches if m.start < held.end and m.end > held.start]
        raw = held.raw
        if overlapping and raw:
            name = b"event: " + held.name + b"\n" if held.name is not None else b""
            raw = name + b"data: " + _redacted(held, overlapping) + b"\n\n"
        room = self._record.body_limit - len(self._head)
        return self._head + raw[:room] if room > 0 else self._head

    async def _block(self) -> None:
        while self._held:  # logged redacted, never sent
            self._release(self._held.popleft(), send=False)
        self._ready.clear()
        error = ResponseBlockedByDlp(self._dlp.findings.header(), context=self._context)
        self._dlp.record_findings(self._record)
        await self._end(None, f"{error.code}: {error.message}")
        raise error


class TranslatedDlpStream(DlpStream, ComposedStream):
    """A compat step's stream (built with its translator): OpenAI chunks the gateway composed, so
    the transports send them as such (with pings), and `to_openai_format` leaves them be."""


def _redacted(held: _Held, matches: list[Match]) -> bytes:
    """The data of a logged event with the matches that touch it redacted: at their places when
    its text is the client's, else (its translation reworded it) all of its text."""
    extracted = held.extracted
    if extracted is None:  # its text, if any, is in no field we know: none of it is kept
        return f"[REDACTED:{matches[0].entry_id}]".encode()
    if held.same_text:
        start = held.start
        return extracted.redacted([Match(m.entry_id, m.start - start, m.end - start) for m in matches])
    return extracted.redacted([Match(matches[0].entry_id, 0, len(extracted.text))])


def _text_of(out: bytes) -> str:
    """The client's text in translated events (whole ones: the translators write no partial event)."""
    texts: list[str] = []
    for raw in out.split(b"\n\n"):
        _, data = _parse(raw)
        extracted = event_text(data) if data is not None else None
        if extracted is not None:
            texts.append(extracted.text)
    return "".join(texts)


def _parse(raw: bytes) -> tuple[bytes | None, bytes | None]:
    name: bytes | None = None
    data: list[bytes] = []
    for line in raw.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    return name, b"\n".join(data) if data else None

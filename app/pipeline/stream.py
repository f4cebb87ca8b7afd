"""Streams handed to transports: the live upstream relay, and the replay of a cached stream.

The relay passes upstream bytes through unchanged while it reads token usage from the events,
keeps a bounded copy for the cache and the log, and at its end finishes the step's log row and
cache slot exactly once, whether the stream ended cleanly, was cut by the upstream, or was
abandoned by the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.core.errors import StreamInterrupted
from app.core.sse import SSEEventTooLarge, SSESplitter
from app.pipeline.cache_slot import CacheSlot
from app.pipeline.recording import StepLog
from app.providers.usage import Usage, loads_or_none
from app.services.cache.store import CachedResponse
from app.upstream.client import UpstreamResponse
from app.upstream.errors import UpstreamError

# What ends a relayed stream early: the upstream broke off, or one event passed AIGW_MAX_SSE_EVENT_BYTES.
BROKEN = (UpstreamError, SSEEventTooLarge)


class UpstreamStream:
    def __init__(
        self,
        response: UpstreamResponse,
        headers: list[tuple[str, str]],
        log: StepLog,
        slot: CacheSlot | None,
        keep_chunks_up_to: int,
        max_event_bytes: int,
    ) -> None:
        self._response = response
        self._headers = headers
        self._log = log
        self._record = log.record
        self._slot = slot
        self._keep_up_to = keep_chunks_up_to
        # A copy is kept only for the cache (the log keeps its own bounded head).
        self._chunks: list[bytes] | None = [] if slot is not None and keep_chunks_up_to > 0 else None
        self._kept = 0
        self._splitter = SSESplitter(max_event_bytes)
        self._usage = Usage()
        self._closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._relay()

    async def _relay(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_bytes():
                self._observe(chunk)
                yield chunk
        except BROKEN as exc:
            raise await self._cut(exc) from None
        await self._end(self._chunks, None)

    async def _cut(self, exc: Exception) -> StreamInterrupted:
        """Ends the row of a stream the upstream broke off (or whose event passed its bound) and
        returns the error that ends the client's stream."""
        if isinstance(exc, SSEEventTooLarge):
            await self._end(None, "stream interrupted: AIGW_MAX_SSE_EVENT_BYTES exceeded")
            return StreamInterrupted("Upstream stream interrupted: an event exceeded the size limit")
        await self._end(None, f"stream interrupted: {exc}")
        return StreamInterrupted("Upstream stream interrupted after it started")

    def _observe(self, chunk: bytes) -> None:
        self._record.add_response_bytes(chunk)
        for event in self._splitter.feed(chunk):
            if b"sage" in event.data:  # "usage" / "usageMetadata": parse only those events
                self._usage.absorb(loads_or_none(event.data))
        if self._chunks is not None:
            self._kept += len(chunk)
            if self._kept > self._keep_up_to:
                self._chunks = None  # too large to cache; stop copying
            else:
                self._chunks.append(chunk)

    async def _end(self, chunks: list[bytes] | None, error: str | None) -> None:
        if self._closed:
            return
        self._closed = True
        await self._response.aclose()
        record = self._record
        record.tokens_in, record.tokens_out = self._usage.tokens_in, self._usage.tokens_out
        record.usage_known = True
        self._log.finish(self._response.status_code, error is None, error)
        if self._slot is None:
            return
        if chunks is None or error is not None:
            await self._slot.abandon()
            return
        whole = tuple(chunks)
        status, headers = self._response.status_code, tuple(self._headers)
        await self._slot.store(CachedResponse(status, headers, b"".join(whole), whole, self._log_copy()))

    def _log_copy(self) -> bytes | None:
        """What a cache hit's row stores instead of the cached body (DLP's redacted copy)."""
        return None

    async def aclose(self) -> None:
        """Ends a stream the transport stopped reading (client gone, cancel): logged as failed."""
        await self._end(None, "client closed the stream before it ended")


class ReplayStream:
    """A cached stream, replayed with the same chunks."""

    def __init__(self, chunks: tuple[bytes, ...]) -> None:
        self._chunks = chunks

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._replay()

    async def _replay(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        return None

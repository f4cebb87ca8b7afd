"""Response bodies decoded as they arrive, with a bound on every step (limits.md §2).

A decompression bomb is a small body that inflates to gigabytes. The only defence is never to
ask a decompressor for more than a small piece at a time: every stage here returns at most
`PIECE` bytes per call (zlib's `max_length`, brotli's `output_buffer_limit`, zstd's `max_length`),
so the caller sees the decoded size grow piece by piece and can stop at its limit long before
memory does. The codings of a response are its `Content-Encoding` list followed by any transfer
codings other than `chunked`; they were applied in that order, so they are undone in reverse.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Protocol

import brotli

try:  # the standard library from Python 3.14 on
    from compression.zstd import ZstdDecompressor, ZstdError  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from backports.zstd import ZstdDecompressor, ZstdError

from app.upstream.errors import UpstreamBodyError

PIECE = 64 * 1024


class _Stage(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def flush(self) -> Iterator[bytes]: ...


class UnknownCoding(UpstreamBodyError):
    pass


class _Zlib:
    """gzip, or deflate: zlib-wrapped as RFC 9110 says, or raw as some servers send it (told apart
    by the zlib header, as browsers do)."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._decoder: zlib._Decompress | None = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None
        self._start = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._decoder is None:
            self._start += data
            if len(self._start) < 2:
                return
            data, self._start = self._start, b""
            wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        yield from self._drain(data)

    def _drain(self, data: bytes) -> Iterator[bytes]:
        decoder = self._decoder
        assert decoder is not None
        try:
            while data:
                piece = decoder.decompress(data, PIECE)
                if piece:
                    yield piece
                data = decoder.unconsumed_tail
                if decoder.eof:
                    if self._gzip and decoder.unused_data:  # another gzip member follows
                        data = decoder.unused_data
                        self._decoder = decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    else:
                        return  # trailing bytes after the stream are ignored, as by zlib's tools
        except zlib.error as exc:
            raise UpstreamBodyError(f"undecodable body: {exc}") from None

    def flush(self) -> Iterator[bytes]:
        if self._start:
            raise UpstreamBodyError("undecodable body: truncated")
        if self._decoder is not None and (tail := self._decoder.flush()):
            yield tail  # flush() only returns what decompress() could not yet emit: below PIECE


class _Brotli:
    def __init__(self) -> None:
        self._decoder = brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        decoder = self._decoder
        try:
            piece = decoder.process(data, output_buffer_limit=PIECE)
            if piece:
                yield piece
            while not decoder.can_accept_more_data():
                piece = decoder.process(b"", output_buffer_limit=PIECE)
                if not piece:
                    return
                yield piece
        except brotli.error as exc:
            raise UpstreamBodyError(f"undecodable body: {exc}") from None

    def flush(self) -> Iterator[bytes]:
        return iter(())


class _Zstd:
    def __init__(self) -> None:
        self._decoder = ZstdDecompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        decoder = self._decoder
        try:
            while True:
                if decoder.eof:  # a frame ended: the next one (if any) needs a new decompressor
                    data = decoder.unused_data + data
                    if not data:
                        return
                    self._decoder = decoder = ZstdDecompressor()
                piece = decoder.decompress(data, PIECE)
                data = b""
                if piece:
                    yield piece
                if decoder.needs_input and not decoder.eof:
                    return
        except (ZstdError, EOFError) as exc:
            raise UpstreamBodyError(f"undecodable body: {exc}") from None

    def flush(self) -> Iterator[bytes]:
        return iter(())


def _stage(coding: str) -> _Stage | None:
    if coding in ("gzip", "x-gzip"):
        return _Zlib(gzip=True)
    if coding == "deflate":
        return _Zlib(gzip=False)
    if coding == "br":
        return _Brotli()
    if coding == "zstd":
        return _Zstd()
    if coding in ("identity", ""):
        return None
    raise UnknownCoding(f"unknown content coding {coding[:32]!r}")


def codings_of(content_encoding: list[str], transfer_encoding: list[str]) -> list[str]:
    """Every coding applied to the body, in the order applied (header values as listed)."""
    codings = [c.strip().lower() for value in content_encoding for c in value.split(",")]
    codings += [
        c.strip().lower()
        for value in transfer_encoding
        for c in value.split(",")
        if c.strip().lower() != "chunked"
    ]
    return [c for c in codings if c not in ("", "identity")]


class BodyDecoder:
    """Undoes a list of codings (in reverse), handing out pieces of at most `PIECE` bytes."""

    __slots__ = ("_stages",)

    def __init__(self, codings: list[str]) -> None:
        stages = [_stage(coding) for coding in reversed(codings)]
        self._stages = [stage for stage in stages if stage is not None]

    def feed(self, data: bytes) -> Iterator[bytes]:
        return self._through(0, data)

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._stages):
            yield data
            return
        for piece in self._stages[index].feed(data):
            yield from self._through(index + 1, piece)

    def flush(self) -> Iterator[bytes]:
        for index, stage in enumerate(self._stages):
            for piece in stage.flush():
                yield from self._through(index + 1, piece)

"""The bytes tests/support/hostile_upstream.py sends: the ok answer (JSON, SSE events), raw HTTP/1.1
responses, and compression bombs — a compressed body of about a megabyte (far less for br and
zstd) that inflates to gigabytes, built once per (kind, size)."""

from __future__ import annotations

import json
import struct
import zlib
from functools import lru_cache
from typing import Any

import brotli
from backports import zstd

HOSTILE_OK_JSON: bytes = (
    b'{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}'
)

KiB = 1024
MiB = 1024 * KiB


ZERO_BLOCK = b"0" * MiB
BOMB_KINDS = ("gzip", "deflate", "raw-deflate", "br", "zstd", "gzip-sse")


def deflate_blocks(prefix: bytes, n_blocks: int) -> tuple[bytes, int]:
    """Raw deflate of `prefix` + `n_blocks` MiB of b"0", and the crc32 of that content.

    Each block is ended with Z_FULL_FLUSH, which makes the compressed output of a block independent
    of everything before it: so the 1 MiB block is compressed once and its output repeated, instead
    of deflating a whole GiB (4 s at level 9). The result is a valid stream, byte for byte what
    compressing block after block with full flushes would give.
    """
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = co.compress(prefix) + co.flush(zlib.Z_FULL_FLUSH) if prefix else b""
    block = co.compress(ZERO_BLOCK) + co.flush(zlib.Z_FULL_FLUSH)
    tail = co.flush(zlib.Z_FINISH)
    crc = zlib.crc32(prefix)
    for _ in range(n_blocks):
        crc = zlib.crc32(ZERO_BLOCK, crc)
    return head + block * n_blocks + tail, crc


@lru_cache(maxsize=16)
def bomb_payload(kind: str, gib: float = 1.0) -> bytes:
    """Compressed body inflating to `gib` GiB of b"0" (`gzip-sse`: b"data: " then the zeros).

    `kind` is one of gzip, deflate (zlib-wrapped), raw-deflate, br, zstd, gzip-sse. Cached per
    (kind, size): the gzip one costs ~0.4 s (its crc32), br and zstd ~0.2 s.
    """
    n_blocks = max(1, round(gib * 1024))
    if kind in ("gzip", "gzip-sse"):
        prefix = b"data: " if kind == "gzip-sse" else b""
        raw, crc = deflate_blocks(prefix, n_blocks)
        size = (len(prefix) + n_blocks * MiB) & 0xFFFFFFFF
        # gzip member: magic, CM=deflate, no flags, mtime 0, XFL 2 (max compression), OS unknown.
        return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + raw + struct.pack("<II", crc, size)
    if kind == "raw-deflate":
        return deflate_blocks(b"", n_blocks)[0]
    if kind == "deflate":
        raw = deflate_blocks(b"", n_blocks)[0]
        adler = 1
        for _ in range(n_blocks):
            adler = zlib.adler32(ZERO_BLOCK, adler)
        return b"\x78\xda" + raw + struct.pack(">I", adler)  # zlib header for level 9
    if kind == "br":
        br = brotli.Compressor(quality=1)
        out = [br.process(ZERO_BLOCK) for _ in range(n_blocks)]
        return b"".join([*out, br.finish()])
    if kind == "zstd":
        zc = zstd.ZstdCompressor(level=1)
        out = [zc.compress(ZERO_BLOCK) for _ in range(n_blocks)]
        return b"".join([*out, zc.flush()])
    raise ValueError(f"unknown bomb kind {kind!r} (one of {', '.join(BOMB_KINDS)})")


def as_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse_chunk_event(delta: dict[str, Any], finish: str | None, usage: bool = False) -> bytes:
    event: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        event["usage"] = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


OK_SSE_EVENTS = [
    sse_chunk_event({"role": "assistant", "content": ""}, None),
    sse_chunk_event({"content": "hello"}, None),
    sse_chunk_event({}, "stop", usage=True),
    b"data: [DONE]\n\n",
]


def raw_deflate(data: bytes) -> bytes:
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    return co.compress(data) + co.flush()


def http_response(status: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """A response with Content-Length (unless the headers say chunked)."""
    head = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers)]
    if not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


JSON_TYPE = ("Content-Type", "application/json")
SSE_TYPE = ("Content-Type", "text/event-stream")
CHUNKED = ("Transfer-Encoding", "chunked")
OK_RESPONSE = http_response("200 OK", [JSON_TYPE], HOSTILE_OK_JSON)

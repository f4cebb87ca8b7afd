"""What goes on the wire to a provider, and what comes back, without any I/O: the request head
(URL target, Host, headers checked against injection), response headers, content decoding, and
the errors of the upstream client (`app/upstream/http1.py`)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from urllib.parse import quote, urlsplit

from app.upstream.errors import InvalidUpstreamRequest, UpstreamBodyError

# Never sent as given: the client sets these itself (or they are hop-by-hop).
_OWN_HEADERS = frozenset(
    {
        "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
        "upgrade", "proxy-connection", "proxy-authorization", "accept-encoding",
    }
)  # fmt: skip
ACCEPT_ENCODING = b"gzip, deflate"
USER_AGENT = b"aigw"
_PATH_SAFE = "/%:@!$&'()*+,;=~"
_QUERY_SAFE = "/%:@!$&'()*+,;=~?"


class ResponseHeaders(Mapping[str, str]):
    """Response headers: case-insensitive lookup (first value), raw pairs kept in order."""

    __slots__ = ("_index", "raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw
        self._index: dict[str, str] = {}
        for name, value in raw:
            self._index.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))

    def __getitem__(self, key: str) -> str:
        return self._index[key.lower()]

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        return self._index.get(key.lower(), default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def decoder_for(encoding: str) -> zlib._Decompress | None:
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)  # zlib-wrapped, as RFC 9110 defines it
    return None


def decode(decoder: zlib._Decompress, chunk: bytes) -> bytes:
    try:
        return decoder.decompress(chunk)
    except zlib.error as exc:
        raise UpstreamBodyError(f"undecodable body: {exc}") from None


def parse_url(url: str) -> tuple[tuple[str, str, int], bytes, bytes]:
    """((scheme, host, port), Host header, request target)."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise InvalidUpstreamRequest(f"invalid URL: {exc}") from None
    if scheme not in ("http", "https") or not host:
        raise InvalidUpstreamRequest("only http and https URLs")
    default = 443 if scheme == "https" else 80
    port = port or default
    host_text = f"[{host}]" if ":" in host else host
    host_header = host_text if port == default else f"{host_text}:{port}"
    target = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_QUERY_SAFE)
    try:
        return (scheme, host, port), host_header.encode("idna"), target.encode("ascii")
    except UnicodeError as exc:
        raise InvalidUpstreamRequest(f"invalid URL: {exc}") from None


def request_head(
    method: str, target: bytes, host: bytes, headers: list[tuple[str, str]], body: bytes
) -> bytes:
    lines = [method.encode("ascii") + b" " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n"]
    has_user_agent = False
    for name, value in headers:
        lowered = name.lower()
        if lowered in _OWN_HEADERS:
            continue
        if lowered == "user-agent":
            has_user_agent = True
        try:
            encoded_name, encoded_value = name.encode("latin-1"), value.encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidUpstreamRequest(f"header {name!r} is not latin-1") from None
        if (
            b"\r" in encoded_value
            or b"\n" in encoded_value
            or b"\0" in encoded_value
            or not _is_token(encoded_name)
        ):
            raise InvalidUpstreamRequest(f"invalid header {name!r}")
        lines.append(encoded_name + b": " + encoded_value + b"\r\n")
    if not has_user_agent:
        lines.append(b"User-Agent: " + USER_AGENT + b"\r\n")
    lines.append(b"Accept-Encoding: " + ACCEPT_ENCODING + b"\r\n")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(b"Content-Length: " + str(len(body)).encode() + b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


_TOKEN_CHARS = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _is_token(name: bytes) -> bool:
    return bool(name) and all(byte in _TOKEN_CHARS for byte in name)

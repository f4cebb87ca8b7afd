"""What a client may put in a step before anything is sent: checked once per step, in
`Pipeline.run`, so HTTP and WebSocket refuse the same requests (400 / 2010).

- The endpoint: no `.` or `..` path segment, also percent-encoded (`%2e%2e`) or behind an encoded
  separator (`%2F..`); never normalised away, never sent. No `#` (a URL fragment) anywhere.
- Template segments (Azure's resource, Bedrock's region, …): `Provider.host_segments`.
- Header names are HTTP tokens; values are Latin-1 without control characters (HTAB allowed), so
  a value can neither split the request head nor fail late as if the network had.

Pure functions on strings; the common case (no `%`, `.` or control character) costs one scan.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from app.core.errors import MalformedRequest
from app.pipeline.types import Step
from app.providers.base import Provider

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[^\t\x20-\x7e\x80-\xff]")
# A segment that is only dots (one or two), between separators; `\` counts, as some servers
# (IIS) read it as `/`.
_DOT_SEGMENT = re.compile(r"(?:^|[/\\])\.\.?(?:[/\\]|$)")


def check_steps(steps: list[Step], providers: list[Provider]) -> None:
    for step, provider in zip(steps, providers, strict=True):
        check_endpoint(step.endpoint, step.query_string)
        provider.host_segments(step.endpoint)
        check_headers(step.headers)


def check_endpoint(endpoint: str, query_string: str = "") -> None:
    if "#" in endpoint or "#" in query_string:
        raise MalformedRequest("The endpoint must not contain '#'")
    if "." not in endpoint and "%" not in endpoint:
        return
    path = unquote(endpoint) if "%" in endpoint else endpoint
    if _DOT_SEGMENT.search(path):
        raise MalformedRequest("The endpoint must not contain '.' or '..' path segments")


def check_headers(headers: list[tuple[str, str]]) -> None:
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise MalformedRequest(f"Header name {name[:64]!r} is not a valid HTTP token")
        if _BAD_VALUE.search(value):
            raise MalformedRequest(f"Header '{name[:64]}' has an invalid value")

"""The text DLP scans in a body, and the same body with matched spans redacted (for storage).

A JSON body of a known shape gives its text fields; any other JSON gives every string value. The
fields are kept as places in the parsed document, so a match found in the joined text can be
redacted in the field it came from and the document written back (only ever for the log: what
the client and provider exchange is never rewritten).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from app.dlp.detector import Match
from app.dlp.multipart import multipart_texts

# A text field: the container holding it and its key (a dict key or a list index).
Place = tuple[Any, Any]
_BINARY_TYPES = ("image/", "audio/", "video/", "application/octet-stream")


@dataclass(slots=True)
class Extracted:
    """Scanned text: the fields joined by `\\n`, and where each one lies in it."""

    text: str
    document: Any = None  # the parsed JSON, None for raw text
    places: tuple[tuple[Place, int, int], ...] = ()

    def redacted(self, matches: list[Match]) -> bytes:
        if self.document is None:
            return redact_text(self.text, matches, 0).encode()
        for (container, key), start, end in self.places:
            inside = [m for m in matches if m.start < end and m.end > start]
            if inside:
                container[key] = redact_text(self.text[start:end], inside, start)
        return orjson.dumps(self.document)


def redact_text(text: str, matches: list[Match], offset: int) -> str:
    """`text` (which starts at `offset` of the scanned text) with each matched span replaced."""
    out: list[str] = []
    at = 0
    for match in sorted(matches, key=lambda m: m.start):
        start, end = max(match.start - offset, 0), min(match.end - offset, len(text))
        if start < at:  # overlapping matches (two entries on one secret): one marker
            start = at
        if end <= start:
            continue
        out += [text[at:start], f"[REDACTED:{match.entry_id}]"]
        at = end
    out.append(text[at:])
    return "".join(out)


def extract_body(body: bytes, content_type: str | None, response: bool) -> Extracted | None:
    """The text of a request or response body, or None when it has none to scan (binary)."""
    kind = (content_type or "").lower()
    if not body or any(kind.startswith(prefix) for prefix in _BINARY_TYPES):
        return None
    if kind.startswith("multipart/"):
        assert content_type is not None
        texts = multipart_texts(body, content_type)  # its text parts; binary parts are skipped
        if texts is None:  # not a whole multipart body: scanned whole, as raw text
            return Extracted(body.decode("utf-8", "replace"))
        return Extracted("\n".join(texts)) if texts else None
    stripped = body.lstrip()[:1]
    if "json" in kind or stripped in (b"{", b"["):
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            document = None
        if document is not None:
            return from_document(document, RESPONSE_FIELDS if response else REQUEST_FIELDS)
    return Extracted(body.decode("utf-8", "replace"))


def from_document(document: Any, fields: Callable[[Any], Iterator[Place]]) -> Extracted:
    places = list(fields(document)) if isinstance(document, dict) else []
    if not places:
        places = list(_every_string(document))
    parts: list[str] = []
    located: list[tuple[Place, int, int]] = []
    at = 0
    for container, key in places:
        value = container[key]
        if not isinstance(value, str):
            value = orjson.dumps(value).decode()  # tool arguments given as objects: their JSON text
            container[key] = value
        parts.append(value)
        located.append(((container, key), at, at + len(value)))
        at += len(value) + 1
    return Extracted("\n".join(parts), document, tuple(located))


def _every_string(node: Any) -> Iterator[Place]:
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(value, str):
            yield node, key
        else:
            yield from _every_string(value)


def _text(node: Any, key: Any) -> Iterator[Place]:
    """The field when it holds text (or, for tool arguments, a JSON value)."""
    if isinstance(node, dict | list) and _has(node, key) and node[key] is not None:
        yield node, key


def _has(node: Any, key: Any) -> bool:
    return key in node if isinstance(node, dict) else isinstance(key, int) and key < len(node)


def _each(node: Any, key: str) -> list[Any]:
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, list) else []


def _content(node: Any, key: str) -> Iterator[Place]:
    """A string field, or a list of parts (text, tool_use input, tool_result content)."""
    value = node.get(key) if isinstance(node, dict) else None
    if isinstance(value, str):
        yield node, key
    elif isinstance(value, list):
        for index, part in enumerate(value):
            if isinstance(part, str):
                yield value, index
            elif isinstance(part, dict):
                yield from _part(part)


def _part(part: dict[str, Any]) -> Iterator[Place]:
    if isinstance(part.get("text"), str):
        yield part, "text"
    if part.get("type") == "tool_use" and "input" in part:
        yield part, "input"
    if part.get("type") == "tool_result":
        yield from _content(part, "content")
    if isinstance(part.get("output"), str):
        yield part, "output"
    if isinstance(part.get("content"), list | str) and part.get("type") != "tool_result":
        yield from _content(part, "content")


def _tool_arguments(calls: list[Any]) -> Iterator[Place]:
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            yield from _text(function, "arguments")
        elif isinstance(call, dict):
            yield from _text(call, "arguments")


def REQUEST_FIELDS(body: dict[str, Any]) -> Iterator[Place]:
    for message in _each(body, "messages"):
        yield from _content(message, "content")
        yield from _tool_arguments(_each(message, "tool_calls"))
    for content in _each(body, "contents"):
        for part in _each(content, "parts"):
            yield from _google_part(part)
    system_instruction = body.get("systemInstruction") or body.get("system_instruction")
    for part in _each(system_instruction, "parts"):
        yield from _google_part(part)
    yield from _content(body, "system")
    yield from _content(body, "instructions")
    yield from _content(body, "input")
    yield from _content(body, "prompt")
    yield from _content(body, "text")


def _google_part(part: Any) -> Iterator[Place]:
    if not isinstance(part, dict):
        return
    yield from _text(part, "text")
    if isinstance(part.get("functionCall"), dict):
        yield from _text(part["functionCall"], "args")
    if isinstance(part.get("functionResponse"), dict):
        yield from _text(part["functionResponse"], "response")


def RESPONSE_FIELDS(body: dict[str, Any]) -> Iterator[Place]:
    for choice in _each(body, "choices"):
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            yield from _content(message, "content")
            yield from _tool_arguments(_each(message, "tool_calls"))
        yield from _text(choice, "text")
    for part in _each(body, "content"):
        if isinstance(part, dict):
            yield from _part(part)
    for candidate in _each(body, "candidates"):
        for part in _each(candidate.get("content") if isinstance(candidate, dict) else None, "parts"):
            yield from _google_part(part)
    for item in _each(body, "output"):
        if isinstance(item, dict):
            yield from _content(item, "content")
            yield from _text(item, "arguments")
    result = body.get("result")
    if isinstance(result, dict):
        yield from _text(result, "response")
        yield from _tool_arguments(_each(result, "tool_calls"))
    if isinstance(body.get("response"), str):
        yield body, "response"

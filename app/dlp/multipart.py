"""The text parts of a multipart body (`multipart/form-data`, and any other `multipart/*` with a
boundary), as DLP scans them: binary parts are skipped (dlp.md §3), as a transcription request's
audio file is, while its `prompt` field is text.

Parsed by python-multipart (Starlette's parser), in one pass over a body the server has already
bounded (AIGW_MAX_BODY_BYTES), with at most `MAX_PARTS` parts and python-multipart's own bounds
on each part's headers. What does not parse as that is answered None: the caller then scans the
whole body as raw text, so a malformed body hides nothing from the detectors.
"""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MAX_PARTS = 1000  # as Starlette's form parser allows (max_files, max_fields)

# Part media types that are text: `text/*`, and these (with `+json` / `+xml` suffixes too).
_TEXT_TYPES = frozenset({b"application/json", b"application/xml", b"application/x-www-form-urlencoded"})


class _TooManyParts(Exception):
    pass


class _Parts:
    """The parser's callbacks: each part's headers, then its data when the part is text."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.ended = False
        self._count = 0
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._data: list[bytes] | None = None
        self._sniff = False  # an untyped file: text only if it is UTF-8

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _begin(self) -> None:
        self._count += 1
        if self._count > MAX_PARTS:
            raise _TooManyParts
        self._headers, self._data = {}, None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        media_type, _ = parse_options_header(self._headers.get(b"content-type"))
        _, disposition = parse_options_header(self._headers.get(b"content-disposition"))
        if media_type:
            text = (
                media_type.startswith(b"text/")
                or media_type in _TEXT_TYPES
                or media_type.endswith((b"+json", b"+xml"))
            )
            self._data, self._sniff = ([] if text else None), False
        else:  # a form field is text; an untyped file is text if it decodes as UTF-8
            self._data, self._sniff = [], b"filename" in disposition or b"filename*" in disposition

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._data is not None:
            self._data.append(data[start:end])

    def _part_end(self) -> None:
        if self._data is None:
            return
        raw = b"".join(self._data)
        if self._sniff:
            with suppress(UnicodeDecodeError):  # not UTF-8: binary, skipped
                self.texts.append(raw.decode("utf-8"))
        else:
            self.texts.append(raw.decode("utf-8", "replace"))
        self._data = None

    def _end(self) -> None:
        self.ended = True


def multipart_texts(body: bytes, content_type: str) -> list[str] | None:
    """The text of each text part, in order; None when `body` is not a whole multipart body with
    the boundary `content_type` names (no boundary, cut short, more than MAX_PARTS parts)."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        return None
    parts = _Parts()
    try:
        parser = MultipartParser(boundary, parts.callbacks(), max_size=max(len(body), 1))
        parser.write(body)
        parser.finalize()
    except (MultipartParseError, _TooManyParts, ValueError):
        return None
    return parts.texts if parts.ended else None

"""What degraded while one request was served (a store that could not be reached, a limiter that
failed open): each note said once, in order, and written to the request's log row
(`gateway_notes`). The request's step owns its `Notes`; services that degrade add to it."""

from __future__ import annotations

from collections.abc import Iterator


class Notes:
    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[str] = []

    def add(self, note: str) -> None:
        if note not in self._items:
            self._items.append(note)

    def text(self) -> str | None:
        """The log column's value: the notes joined, or None when nothing degraded."""
        return "; ".join(self._items) or None

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

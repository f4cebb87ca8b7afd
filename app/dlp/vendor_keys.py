"""The vendors' key formats (the `api_keys` profile): each as the literals a key starts with, the
pattern of the rest, and the alphabet a key may not touch. The generic `key = value` detector
names the vendor when its value is one of these."""

from __future__ import annotations

import re

from app.dlp.validators import has_letter_and_digit

_TOKEN = "A-Za-z0-9_-"

# entry id -> (anchors, pattern after the anchor, alphabet of the key)
VENDOR_KEYS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "api_keys.anthropic": (("sk-ant-",), rf"[{_TOKEN}]{{20,200}}", _TOKEN),
    "api_keys.openai": (("sk-",), rf"(?!ant-)(?:proj-)?[{_TOKEN}]{{20,200}}", _TOKEN),
    "api_keys.github": (
        ("gh", "github_pat_"),
        r"(?:(?<=gh)[pousr]_[A-Za-z0-9]{36,200}|(?<=github_pat_)[A-Za-z0-9_]{22,200})",
        "A-Za-z0-9_",
    ),
    "api_keys.slack": (("xox",), r"[abposr]-[A-Za-z0-9-]{10,200}", "A-Za-z0-9-"),
    "api_keys.google": (("AIza",), rf"[{_TOKEN}]{{35}}", _TOKEN),
    "api_keys.stripe": (("sk_", "rk_"), r"(?:live|test)_[0-9A-Za-z]{16,200}", "A-Za-z0-9_"),
    # Three base64url parts of at least 10 characters each, MAX_MATCH_CHARS in all at most.
    "api_keys.jwt": (("eyJ",), rf"[{_TOKEN}]{{7,60}}\.eyJ[{_TOKEN}]{{7,120}}\.[{_TOKEN}]{{10,67}}", _TOKEN),
}

_FULL = {
    entry: re.compile("(?:" + "|".join(re.escape(a) for a in anchors) + ")" + pattern)
    for entry, (anchors, pattern, _) in VENDOR_KEYS.items()
}


def generic_secret_entry(value: str) -> str | None:
    """A `key = value` secret: the vendor's entry when the value is a known key, else generic."""
    if not has_letter_and_digit(value):
        return None
    for entry, pattern in _FULL.items():
        if pattern.fullmatch(value):
            return entry
    return "api_keys.generic"

"""Token minting and verification helpers.

A token value is `aigw_<id>_<secret>`: the id finds the row without scanning, and the secret is
checked against a SHA-256 stored at rest with a constant-time comparison. Tokens carry 256 bits of
randomness, so a fast hash is enough (slow password hashes protect low-entropy secrets).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from ulid import ULID

TOKEN_PREFIX = "aigw_"


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_token() -> tuple[str, str, str]:
    """Returns (token id, full token value to show once, hash to store)."""
    token_id = str(ULID()).lower()
    value = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    return token_id, value, hash_secret(value)


def token_id_of(value: str) -> str | None:
    """The id part of a well-formed token value, else None."""
    if not value.startswith(TOKEN_PREFIX):
        return None
    token_id, sep, secret = value[len(TOKEN_PREFIX) :].partition("_")
    if not sep or len(token_id) != 26 or not secret:
        return None
    return token_id


def matches(value: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(value), stored_hash)


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def bearer_value(header: str | None) -> str | None:
    """`Bearer <token>` or a bare token → the token; empty → None."""
    if not header:
        return None
    value = header.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value or None

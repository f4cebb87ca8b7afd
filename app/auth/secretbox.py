"""Encryption at rest of stored provider keys (BYOK), with the server key `AIGW_SECRET_KEY`.

AES-256-GCM from `cryptography` (an authenticated cipher: a changed byte fails to decrypt instead
of yielding a wrong key). The 256-bit key is derived once per process from the setting with scrypt,
so an operator's passphrase is stretched; the salt is fixed because the derived key must be the
same on every worker and replica. Each ciphertext is bound to its row (`context`, used as
associated data): a ciphertext copied to another row does not decrypt there.

Stored format: `b"\\x01" + 12-byte random nonce + ciphertext-with-tag`.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

_VERSION = b"\x01"
_NONCE_BYTES = 12
_SALT = b"aigw/provider-configs/v1"
MIN_KEY_CHARS = 16


class SecretKeyMissing(Exception):
    """AIGW_SECRET_KEY is not set: secrets can be neither stored nor read."""


class SecretUndecryptable(Exception):
    """The ciphertext was made with another server key, or was altered."""


def derive_key(secret_key: str) -> bytes:
    """The AES-256 key for a server secret (scrypt, N=2^14, r=8, p=1: ~50 ms, once per process)."""
    if len(secret_key) < MIN_KEY_CHARS:
        raise ValueError(f"AIGW_SECRET_KEY must be at least {MIN_KEY_CHARS} characters")
    return Scrypt(salt=_SALT, length=32, n=2**14, r=8, p=1).derive(secret_key.encode())


class SecretBox:
    def __init__(self, secret_key: str | None) -> None:
        self._cipher = AESGCM(derive_key(secret_key)) if secret_key else None

    @property
    def enabled(self) -> bool:
        return self._cipher is not None

    def _require(self) -> AESGCM:
        if self._cipher is None:
            raise SecretKeyMissing("AIGW_SECRET_KEY is not set")
        return self._cipher

    def encrypt(self, plaintext: str, context: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._require().encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, blob: bytes, context: str) -> str:
        cipher = self._require()
        if blob[:1] != _VERSION or len(blob) <= 1 + _NONCE_BYTES:
            raise SecretUndecryptable("unknown ciphertext format")
        nonce, body = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
        try:
            return cipher.decrypt(nonce, body, context.encode()).decode()
        except InvalidTag as exc:
            raise SecretUndecryptable("wrong server key or altered ciphertext") from exc


def preview(secret: str) -> str:
    """First and last characters only: 4 + 4 for long keys, fewer for short ones."""
    if len(secret) >= 16:
        return f"{secret[:4]}...{secret[-4:]}"
    if len(secret) >= 8:
        return f"{secret[:2]}...{secret[-2:]}"
    return "..."

"""Token checks shared by gateway traffic (`run`) and the management API (`read`, `edit`).

Tokens are looked up through `TokenLookup` (the config cache, in the app): this package stands
below the services and the database, and imports neither."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from app.auth import tokens as token_values
from app.core.errors import Unauthorized


class StoredToken(Protocol):
    """What is kept of a token: its hash, never its value."""

    @property
    def id(self) -> str: ...
    @property
    def account_id(self) -> str: ...
    @property
    def token_hash(self) -> str: ...
    @property
    def permissions(self) -> frozenset[str]: ...
    @property
    def gateways(self) -> Set[str]: ...

    def usable(self, now: datetime) -> bool: ...


class TokenLookup(Protocol):
    async def token(self, token_id: str) -> StoredToken | None: ...

    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token speaks for. `gateways` None means every gateway (admin or `*`)."""

    token_id: str | None
    account_id: str | None  # None: the server admin, every account
    permissions: frozenset[str]
    gateways: frozenset[str] | None

    @property
    def is_admin(self) -> bool:
        return self.account_id is None

    def can(self, permission: str, account_id: str, gateway_id: str | None = None) -> bool:
        if self.is_admin:
            return True
        if self.account_id != account_id or permission not in self.permissions:
            return False
        return gateway_id is None or self.gateways is None or gateway_id in self.gateways


ADMIN = Principal(
    token_id=None, account_id=None, permissions=frozenset({"run", "read", "edit"}), gateways=None
)


async def identify(lookup: TokenLookup, admin_token: str | None, raw_header: str | None) -> Principal:
    """Resolve a `Bearer` header to a principal, or raise Unauthorized (2009)."""
    value = token_values.bearer_value(raw_header)
    if value is None:
        raise Unauthorized()
    if admin_token and token_values.constant_time_equal(value, admin_token):
        return ADMIN
    token_id = token_values.token_id_of(value)
    record = await lookup.token(token_id) if token_id else None
    if record is None or not token_values.matches(value, record.token_hash):
        raise Unauthorized()
    if not record.usable(lookup.now()):
        raise Unauthorized()
    gateways = None if "*" in record.gateways else frozenset(record.gateways)
    return Principal(record.id, record.account_id, record.permissions, gateways)


async def require(
    lookup: TokenLookup,
    admin_token: str | None,
    raw_header: str | None,
    permission: str,
    account_id: str,
    gateway_id: str | None = None,
) -> Principal:
    principal = await identify(lookup, admin_token, raw_header)
    if not principal.can(permission, account_id, gateway_id):
        raise Unauthorized()
    return principal

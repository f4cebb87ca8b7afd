"""Token checks shared by gateway traffic (`run`) and the management API (`read`, `edit`)."""

from __future__ import annotations

from dataclasses import dataclass

from app.auth import tokens as security
from app.core.errors import Unauthorized
from app.services.config import Directory


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


async def identify(directory: Directory, admin_token: str | None, raw_header: str | None) -> Principal:
    """Resolve a `Bearer` header to a principal, or raise Unauthorized (2009)."""
    value = security.bearer_value(raw_header)
    if value is None:
        raise Unauthorized()
    if admin_token and security.constant_time_equal(value, admin_token):
        return ADMIN
    token_id = security.token_id_of(value)
    record = await directory.token(token_id) if token_id else None
    if record is None or not security.matches(value, record.token_hash):
        raise Unauthorized()
    if not record.usable(directory.now()):
        raise Unauthorized()
    gateways = None if "*" in record.gateways else record.gateways
    return Principal(record.id, record.account_id, record.permissions, gateways)


async def require(
    directory: Directory,
    admin_token: str | None,
    raw_header: str | None,
    permission: str,
    account_id: str,
    gateway_id: str | None = None,
) -> Principal:
    principal = await identify(directory, admin_token, raw_header)
    if not principal.can(permission, account_id, gateway_id):
        raise Unauthorized()
    return principal

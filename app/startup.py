"""What `aigw serve` tells the operator before it serves: where it listens, where the docs are,
which database and Redis it uses, and warnings about exposure (no admin token, or gateways whose
authentication is off, on a server reachable beyond this machine)."""

from __future__ import annotations

import asyncio
import ipaddress

from sqlalchemy.engine import make_url
from sqlmodel import col, select

from app.core.settings import Settings
from app.db.location import describe
from app.db.models import Gateway
from app.db.session import create_engine, session_factory

_MAX_LISTED = 10


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it can be reached from elsewhere


def base_url(host: str, port: int, tls: bool) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def report(settings: Settings, host: str, port: int, tls: bool) -> list[str]:
    """The lines `aigw serve` prints before it starts (warnings first, prefixed `WARNING:`)."""
    url = base_url(host, port, tls)
    redis = make_url(settings.redis_url).render_as_string(hide_password=True) if settings.redis_url else None
    lines = [
        *exposure_warnings(settings, host),
        f"aigw: listening on {url} (bound to {host})",
        f"aigw: API docs {url}/docs, guide {url}/docs/guide/",
        f"aigw: database {describe(settings.database_url)}",
        f"aigw: redis {redis or 'none (cache and rate limits kept in this process)'}",
    ]
    return lines


def exposure_warnings(settings: Settings, host: str) -> list[str]:
    if is_loopback(host):
        return []
    warnings = []
    if not settings.admin_token:
        warnings.append(
            f"WARNING: aigw listens on {host}, beyond this machine, with no AIGW_ADMIN_TOKEN: "
            "only tokens minted with `aigw tokens create` can use the management API"
        )
    open_gateways = asyncio.run(_unauthenticated_gateways(settings.database_url))
    if open_gateways:
        shown = ", ".join(open_gateways[:_MAX_LISTED])
        more = f" and {len(open_gateways) - _MAX_LISTED} more" if len(open_gateways) > _MAX_LISTED else ""
        warnings.append(
            f"WARNING: aigw listens on {host} and these gateways need no token (authentication off): "
            f"{shown}{more}; anyone who can reach this port can use them"
        )
    return warnings


async def _unauthenticated_gateways(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            query = select(Gateway.account_id, Gateway.id).where(col(Gateway.authentication).is_(False))
            rows = (await session.exec(query.order_by(Gateway.account_id, Gateway.id))).all()
    finally:
        await engine.dispose()
    return [f"{account}/{gateway}" for account, gateway in rows]

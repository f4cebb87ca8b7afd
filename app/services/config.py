"""In-process cache of configuration rows (gateways, tokens) read on the request path.

The request path must not wait for the database on every request, so lookups are trusted for a
TTL and concurrent lookups of the same key share one query. Writes evict their entries at once:
in this process directly, in the others over Redis pub/sub (`invalidation.py`). The TTL
is asked on every lookup, so it can follow the state of that subscription (short while it is down).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth.secretbox import SecretBox
from app.core.errors import GatewayError, ServiceUnavailable
from app.db.models import Gateway, Token, utcnow
from app.db.otel_exporters import ExporterConfig, exporter_configs, open_exporters
from app.dlp.config import CompiledDlp, compile_dlp
from app.services.spend.rules import SpendPolicy, compile_spend_limits

logger = logging.getLogger("aigw.config")

K = TypeVar("K")
V = TypeVar("V")
# Seconds an entry is trusted: fixed, or asked on every lookup (app.services.invalidation.ConfigTTL).
TTL = float | Callable[[], float]


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    account_id: str
    id: str
    authentication: bool
    collect_logs: bool
    cache_ttl: int
    rate_limiting_limit: int
    rate_limiting_interval: int
    rate_limiting_technique: str
    retry_max_attempts: int | None
    retry_delay: int | None
    retry_backoff: str | None
    log_management: int | None
    log_management_strategy: str | None
    dlp: CompiledDlp | None = None  # None: DLP off (the request path skips it entirely)
    otel: tuple[ExporterConfig, ...] = ()  # the gateway's own OpenTelemetry exporters
    spend: SpendPolicy | None = None  # compiled `spend_limits`; None: nothing to enforce

    @classmethod
    def from_row(cls, row: Gateway, box: SecretBox | None = None) -> GatewayConfig:
        """`box`: the server key, to decrypt the secrets of the gateway's OTel exporters."""
        return cls(
            account_id=row.account_id,
            id=row.id,
            authentication=row.authentication,
            collect_logs=row.collect_logs,
            cache_ttl=row.cache_ttl or 0,
            rate_limiting_limit=row.rate_limiting_limit or 0,
            rate_limiting_interval=row.rate_limiting_interval or 0,
            rate_limiting_technique=row.rate_limiting_technique or "fixed",
            retry_max_attempts=row.retry_max_attempts,
            retry_delay=row.retry_delay,
            retry_backoff=row.retry_backoff,
            log_management=row.log_management,
            log_management_strategy=row.log_management_strategy,
            dlp=compile_dlp(row.dlp),
            otel=exporter_configs(open_exporters(row.otel, box, row.account_id, row.id)),
            spend=compile_spend_limits(row.spend_limits),
        )


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    account_id: str
    token_hash: str
    permissions: frozenset[str]
    gateways: frozenset[str]
    expires_on: datetime | None
    revoked: bool

    def usable(self, now: datetime) -> bool:
        return not self.revoked and (self.expires_on is None or self.expires_on > now)

    @classmethod
    def from_row(cls, row: Token) -> TokenRecord:
        return cls(
            id=row.id,
            account_id=row.account_id,
            token_hash=row.token_hash,
            permissions=frozenset(row.permissions or ()),
            gateways=frozenset(row.gateways or ("*",)),
            expires_on=row.expires_on,
            revoked=row.revoked_at is not None,
        )


class TTLCache(Generic[K, V]):
    """A small TTL map whose misses are loaded once however many callers ask at the same time.

    When the database cannot answer a reload (down, or silent behind a network partition), the
    last value read is served rather than failing or stalling requests: the caller that starts a
    reload waits for it at most `stale_wait_s`, callers arriving while it runs get the last value
    at once, and a failed reload keeps that value for another TTL. A key never read needs the
    database."""

    def __init__(self, ttl: TTL, max_entries: int = 100_000, stale_wait_s: float = 0.5) -> None:
        self._ttl: Callable[[], float] = ttl if callable(ttl) else (lambda: ttl)
        self._max = max_entries
        self._stale_wait = stale_wait_s
        # key -> (when it was loaded, value): the age is compared with the TTL of the moment, so a
        # TTL that shrinks (pub/sub lost) applies at once to what is already cached.
        self._entries: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Task[V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        hit = self._entries.get(key)
        if hit is not None and time.monotonic() - hit[0] < self._ttl():
            return hit[1]
        pending = self._loading.get(key)
        if pending is not None and hit is not None:
            return hit[1]  # a reload is under way; the last value is as good as a moment ago
        if pending is None:
            pending = asyncio.create_task(self._load(key, load, hit))
            pending.add_done_callback(lambda task: task.cancelled() or task.exception())
            self._loading[key] = pending
        if hit is None:
            return await asyncio.shield(pending)
        try:
            return await asyncio.wait_for(asyncio.shield(pending), self._stale_wait)
        except TimeoutError:
            logger.warning("config reload slower than %.1f s, serving the cached entry", self._stale_wait)
            return hit[1]

    async def _load(self, key: K, load: Callable[[], Awaitable[V]], hit: tuple[float, V] | None) -> V:
        this = asyncio.current_task()
        # Aged from before the query: the row may have been read at any point while it ran.
        loaded_at = time.monotonic()
        try:
            value = await load()
        except GatewayError:
            raise
        except Exception as exc:
            if hit is None:  # nothing to fall back on: a clear 503, not an internal error
                logger.warning("config store unavailable: %s", exc)
                raise ServiceUnavailable("Configuration store unavailable; try again shortly") from None
            logger.warning("config reload failed, serving the cached entry: %s", exc)
            value, loaded_at = hit[1], time.monotonic()  # kept for another TTL, then tried again
        finally:
            still_wanted = self._loading.get(key) is this
            if still_wanted:
                del self._loading[key]
        # Invalidated while loading: the row may have been read before the change, so it answers
        # the callers already waiting but is not cached (with a long TTL it would stay stale).
        if still_wanted:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = (loaded_at, value)
        return value

    def put(self, key: K, value: V) -> None:
        """Cache a value this process has just written (a load under way may predate it)."""
        self._loading.pop(key, None)
        self._entries[key] = (time.monotonic(), value)

    def invalidate(self, key: K) -> None:
        self._entries.pop(key, None)
        self._loading.pop(key, None)  # a load under way may have read the old row: not cached

    def clear(self) -> None:
        self._entries.clear()
        self._loading.clear()


class ConfigCache:
    """Cached reads of gateways and tokens for the request path."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], ttl: TTL, box: SecretBox | None = None
    ) -> None:
        self._sessions = sessions
        self._box = box
        self._gateways: TTLCache[tuple[str, str], GatewayConfig | None] = TTLCache(ttl)
        self._tokens: TTLCache[str, TokenRecord | None] = TTLCache(ttl)

    async def gateway(self, account_id: str, gateway_id: str) -> GatewayConfig | None:
        async def load() -> GatewayConfig | None:
            async with self._sessions() as session:
                row = await session.get(Gateway, (account_id, gateway_id))
                return GatewayConfig.from_row(row, self._box) if row else None

        return await self._gateways.get((account_id, gateway_id), load)

    async def ensure_default_gateway(self, account_id: str) -> GatewayConfig:
        """Create the `default` gateway on first authenticated use (authentication on, logs on)."""
        async with self._sessions() as session:
            row = await session.get(Gateway, (account_id, "default"))
            if row is None:
                row = Gateway(account_id=account_id, id="default", authentication=True, collect_logs=True)
                session.add(row)
                try:
                    await session.commit()
                except Exception:  # another worker created it first: read theirs
                    await session.rollback()
                    row = await session.get(Gateway, (account_id, "default"))
                    if row is None:
                        raise
        config = GatewayConfig.from_row(row, self._box)
        # Cached rather than evicted: the caller (and every request after it) would otherwise read
        # it straight back. Other processes find it the same way on their first request.
        self._gateways.put((account_id, "default"), config)
        return config

    async def token(self, token_id: str) -> TokenRecord | None:
        async def load() -> TokenRecord | None:
            async with self._sessions() as session:
                row = (await session.exec(select(Token).where(Token.id == token_id))).first()
                return TokenRecord.from_row(row) if row else None

        return await self._tokens.get(token_id, load)

    def invalidate_gateway(self, account_id: str, gateway_id: str) -> None:
        self._gateways.invalidate((account_id, gateway_id))

    def invalidate_token(self, token_id: str) -> None:
        self._tokens.invalidate(token_id)

    def clear(self) -> None:
        self._gateways.clear()
        self._tokens.clear()

    @staticmethod
    def now() -> datetime:
        return utcnow()

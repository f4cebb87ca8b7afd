"""Configuration changes reach every process's caches over Redis pub/sub (issue 5).

Each process caches gateways and tokens (`ConfigCache`), stored keys and custom providers (`AccountProviders`)
so that no request waits for the database. A write through the management API or the CLI evicts
the entries it changed in its own process at once and publishes a `Change` on `CHANNEL`; every
process's subscriber evicts the same entries when the message arrives, milliseconds later.

Pub/sub delivers only to subscribers connected at the time, so the caches trust it only while it
demonstrably works (`ConfigTTL`):
- the subscriber pings Redis on its own connection whenever it has heard nothing for `HEARTBEAT_S`;
  entries are trusted for the longer pub/sub TTL only while something was heard in the last
  `TRUST_S`, and for the short TTL otherwise (Redis down, connection dead or silently partitioned);
- every subscription, the first and each one after a reconnect, clears the caches: what was
  published while this process was not listening is lost, so nothing cached before it is trusted.
A writer that cannot publish logs a warning and its write still succeeds; the TTL bounds staleness.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from redis import asyncio as redis_asyncio

if TYPE_CHECKING:
    from app.services.account_providers import AccountProviders
    from app.services.config import ConfigCache
    from app.services.route_cache import RouteCache

logger = logging.getLogger("aigw.config")

CHANNEL = "aigw:config-invalidate"
# A silent subscriber connection pings this often: the pong is how a quiet channel proves it is up.
HEARTBEAT_S = 0.2
# Heard nothing for this long: fall back to the short TTL. Well above one heartbeat round trip, and
# short enough that (with the short TTL) a change missed meanwhile is still seen within a second.
TRUST_S = 0.6
# A publish that takes longer than this is abandoned: a management write must not hang on Redis.
PUBLISH_TIMEOUT_S = 1.0
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 2.0

Kind = Literal["gateway", "token", "keys", "custom", "routes"]
KINDS: frozenset[str] = frozenset(get_args(Kind))


@dataclass(frozen=True, slots=True)
class Change:
    """One changed cache entry. `key` is the gateway id (`gateway`: its settings; `keys`: its stored
    provider keys; `routes`: its dynamic routes), the token id (`token`), or empty (`custom`: the
    account's custom providers)."""

    kind: Kind
    account_id: str
    key: str = ""


def encode(origin: str, changes: Iterable[Change]) -> str:
    return json.dumps({"origin": origin, "changes": [[c.kind, c.account_id, c.key] for c in changes]})


def decode(payload: bytes | str) -> tuple[str, list[Change]]:
    """The sender and its changes; ValueError for anything else (a newer or foreign sender)."""
    try:
        data = json.loads(payload)
        origin = data["origin"]
        changes = [Change(kind, account, key) for kind, account, key in data["changes"]]
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"not a config-invalidation message: {exc}") from None
    if not isinstance(origin, str) or any(
        c.kind not in KINDS or not isinstance(c.account_id, str) or not isinstance(c.key, str)
        for c in changes
    ):
        raise ValueError("not a config-invalidation message: unknown kind or field type")
    return origin, changes


async def publish(redis: redis_asyncio.Redis, origin: str, changes: Iterable[Change]) -> bool:
    """Tell every subscribed process. Never raises: the write it reports is already committed, and
    the other processes' TTL still bounds how long they serve the old value."""
    payload = encode(origin, changes)
    try:
        await asyncio.wait_for(redis.publish(CHANNEL, payload), PUBLISH_TIMEOUT_S)
    except Exception as exc:  # Redis down, refused, slow: a warning, never a failed write
        logger.warning("config change not published (other processes see it when their TTL ends): %s", exc)
        return False
    return True


async def announce(redis_url: str | None, changes: Iterable[Change]) -> None:
    """Publish from a process that has no caches of its own (the CLI)."""
    if not redis_url:
        return
    redis = redis_asyncio.from_url(redis_url, socket_connect_timeout=PUBLISH_TIMEOUT_S)
    try:
        await publish(redis, f"cli-{uuid.uuid4().hex}", changes)
    finally:
        await redis.aclose()


class ConfigTTL:
    """How long a cached config entry is trusted, asked on every lookup (so a change of state applies
    to entries already cached): `pubsub_s` while the subscriber has heard from Redis in the last
    `TRUST_S`, `short_s` otherwise. Never heard (no Redis, not yet subscribed): `short_s`."""

    def __init__(self, short_s: float, pubsub_s: float) -> None:
        self.short_s = short_s
        self.pubsub_s = pubsub_s
        self._trusted_until = 0.0

    def __call__(self) -> float:
        return self.pubsub_s if time.monotonic() < self._trusted_until else self.short_s

    @property
    def live(self) -> bool:
        return time.monotonic() < self._trusted_until

    def heard(self) -> None:
        self._trusted_until = time.monotonic() + TRUST_S

    def distrust(self) -> None:
        self._trusted_until = 0.0


class ConfigInvalidation:
    """Evicts changed config from this process's caches and, with Redis, from every other process's.

    `changed()` is what writers call; `start()` runs the subscriber (only with a Redis URL)."""

    def __init__(
        self,
        redis_url: str | None,
        ttl: ConfigTTL,
        config_cache: ConfigCache | None,
        account_providers: AccountProviders | None = None,
        routes: RouteCache | None = None,
    ) -> None:
        self.origin = uuid.uuid4().hex
        self.ttl = ttl
        self._config = config_cache
        self._account_providers = account_providers
        self._routes = routes
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._lost_at: float | None = None  # when the subscription was lost, until it is back
        self._redis: redis_asyncio.Redis | None = None
        if redis_url:
            # Its own client, named so an operator (or a test) can find the subscriber connection in
            # CLIENT LIST; a pub/sub connection is held for good, so it would not be pooled anyway.
            self._redis = redis_asyncio.from_url(
                redis_url, client_name=f"aigw-config-{self.origin[:12]}", socket_connect_timeout=1.0
            )

    @property
    def client_name(self) -> str | None:
        return None if self._redis is None else f"aigw-config-{self.origin[:12]}"

    async def changed(self, *changes: Change) -> None:
        """After a committed write: evict here at once (no waiting for our own message), then tell
        the other processes."""
        for change in changes:
            self._evict(change)
        if self._redis is not None:
            await publish(self._redis, self.origin, changes)

    def _evict(self, change: Change) -> None:
        if change.kind == "gateway" and self._config is not None:
            self._config.invalidate_gateway(change.account_id, change.key)
        elif change.kind == "token" and self._config is not None:
            self._config.invalidate_token(change.key)
        elif change.kind == "keys" and self._account_providers is not None:
            self._account_providers.invalidate_keys(change.account_id, change.key)
        elif change.kind == "custom" and self._account_providers is not None:
            self._account_providers.invalidate_custom(change.account_id)
        elif change.kind == "routes" and self._routes is not None:
            self._routes.invalidate_gateway(change.account_id, change.key)

    def _clear(self) -> None:
        if self._config is not None:
            self._config.clear()
        if self._account_providers is not None:
            self._account_providers.clear()
        if self._routes is not None:
            self._routes.clear()

    # ---- subscriber ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._redis is not None and self._task is None:
            self._task = asyncio.create_task(self._subscribe_forever(), name="aigw-config-invalidation")

    async def stop(self) -> None:
        self._stopping = True
        task = self._task
        if task is not None:
            # Cancelled again until it ends: a cancellation that lands inside the Redis client
            # while it (re)connects can be absorbed there, and one cancel would then never end
            # the loop (a worker stopped right after it started hung in its shutdown).
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.5)
            self._task = None
        if self._redis is not None:
            await self._redis.aclose()

    async def _subscribe_forever(self) -> None:
        assert self._redis is not None
        delay = RECONNECT_MIN_S
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._listen(self._redis)
            except Exception as exc:  # connection lost or refused: the TTL falls back, then retry
                self.ttl.distrust()
                if time.monotonic() - started > RECONNECT_MAX_S:
                    delay = RECONNECT_MIN_S  # it had been working: a blip, reconnect promptly
                if self._lost_at is None:  # once per outage, not once per attempt
                    self._lost_at = time.monotonic()
                    logger.warning(
                        "config invalidation: Redis subscription lost (%s); config TTL %.1f s until back",
                        exc,
                        self.ttl.short_s,
                    )
                else:
                    logger.debug("config invalidation: reconnect failed (%s); retry in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _listen(self, redis: redis_asyncio.Redis) -> None:
        async with redis.pubsub() as pubsub:
            await pubsub.subscribe(CHANNEL)
            while not self._stopping:
                message = await pubsub.get_message(timeout=HEARTBEAT_S)
                if message is None:
                    await pubsub.ping()  # its pong comes back as a message: proof the link works
                    continue
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            # Also sent again when redis-py reconnects and resubscribes on its own: either way,
            # messages may have been missed since the last subscription.
            self._clear()
            if self._lost_at is not None:
                logger.warning(
                    "config invalidation: Redis subscription back after %.1f s; config caches cleared",
                    time.monotonic() - self._lost_at,
                )
                self._lost_at = None
        elif kind == "message":
            try:
                origin, changes = decode(message["data"])
            except ValueError as exc:
                logger.warning("%s; clearing the config caches to be safe", exc)
                self._clear()
            else:
                if origin != self.origin:  # our own writes were evicted when they were made
                    for change in changes:
                        self._evict(change)
        self.ttl.heard()

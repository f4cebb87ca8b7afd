"""What the request path reads of an account's own configuration besides gateways and tokens:
custom providers (`custom-{slug}`) and stored provider keys (BYOK).

Both are cached in process like the config cache's entries (`TTLCache`: trusted for the config TTL,
one query however many requests miss at once, writes evicted at once, in other processes over Redis
pub/sub), so a request never waits for the database. Stored keys are cached encrypted and decrypted
only when one is asked for; the pipeline puts the plaintext on the upstream request's headers and
nowhere else (log rows store bodies, never headers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.auth.secretbox import SecretBox, SecretKeyMissing, SecretUndecryptable
from app.core.errors import UnknownKeyAlias, UnknownProvider
from app.db.custom_providers import CUSTOM_PREFIX
from app.db.models import CustomProvider, ProviderConfig
from app.db.provider_configs import secret_context
from app.providers.base import Provider
from app.providers.catalog import get_provider
from app.services.config import TTL, TTLCache

logger = logging.getLogger("aigw.byok")

DEFAULT_ALIAS = "default"
_SCHEMES = ("bearer ", "basic ", "key ")


def credential_header(provider: Provider, secret: str) -> tuple[str, str]:
    """The header a provider reads its key from, with the key in it: `Authorization: Bearer …`
    for most, `x-api-key` (Anthropic), `x-goog-api-key` (Google AI Studio), `api-key` (Azure),
    `xi-api-key` (ElevenLabs), `Authorization: Key …` (fal). A stored value that already carries
    a scheme (`Bearer …`, `Basic …`, `Key …`) is used as it is."""
    name = provider.credential_headers[0]
    if name != "authorization":
        return name, secret
    if secret.lower().startswith(_SCHEMES):
        return "Authorization", secret
    scheme = "Key" if provider.slug == "fal" else "Bearer"
    return "Authorization", f"{scheme} {secret}"


@dataclass(frozen=True, slots=True)
class StoredKey:
    id: str
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class GatewayKeys:
    """A gateway's stored keys: by (provider, alias), and each provider's `default_config` key."""

    by_alias: dict[tuple[str, str], StoredKey] = field(default_factory=dict)
    defaults: dict[str, StoredKey] = field(default_factory=dict)

    def find(self, provider: str, alias: str | None) -> StoredKey | None:
        """The key to inject, None if there is none to use; UnknownKeyAlias (2040) when the client
        named an alias this gateway has no key under."""
        if alias is not None:
            key = self.by_alias.get((provider, alias))
            if key is None:
                raise UnknownKeyAlias(f"No stored key for provider {provider!r} with alias {alias[:64]!r}")
            return key
        return self.by_alias.get((provider, DEFAULT_ALIAS)) or self.defaults.get(provider)


class AccountProviders:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], ttl: TTL, box: SecretBox) -> None:
        self._sessions = sessions
        self._box = box
        self._custom: TTLCache[str, dict[str, Provider]] = TTLCache(ttl)
        self._keys: TTLCache[tuple[str, str], GatewayKeys] = TTLCache(ttl)
        self._warned: set[str] = set()

    # ---- custom providers --------------------------------------------------------------------------

    async def provider(self, account_id: str, slug: str) -> Provider:
        """A catalog provider, or the account's custom provider for `custom-{slug}` (2008 if none)."""
        if not slug.startswith(CUSTOM_PREFIX):
            return get_provider(slug)
        providers = await self._custom.get(account_id, lambda: self._load_custom(account_id))
        provider = providers.get(slug)
        if provider is None:
            raise UnknownProvider(f"Unknown provider: {slug[:64]}")
        return provider

    async def _load_custom(self, account_id: str) -> dict[str, Provider]:
        async with self._sessions() as session:
            query = select(CustomProvider).where(
                col(CustomProvider.account_id) == account_id, col(CustomProvider.enable).is_(True)
            )
            rows = (await session.exec(query)).all()
        # A tenant chose these hosts: the upstream client checks the address it connects to.
        return {
            f"{CUSTOM_PREFIX}{row.slug}": Provider(
                f"{CUSTOM_PREFIX}{row.slug}", row.base_url.rstrip("/"), tenant_destination=True
            )
            for row in rows
        }

    def invalidate_custom(self, account_id: str) -> None:
        self._custom.invalidate(account_id)

    # ---- stored provider keys ----------------------------------------------------------------------

    async def stored_credential(
        self, account_id: str, gateway_id: str, provider: Provider, alias: str | None
    ) -> tuple[str, str] | None:
        """The credential header to add from the gateway's stored key (None: nothing to add). For
        authenticated requests that carry no credential of their own: the caller checks both."""
        keys = await self._keys.get((account_id, gateway_id), lambda: self._load_keys(account_id, gateway_id))
        stored = keys.find(provider.slug, alias)
        if stored is None:
            return None
        try:
            secret = self._box.decrypt(stored.ciphertext, secret_context(account_id, gateway_id, stored.id))
        except (SecretKeyMissing, SecretUndecryptable) as exc:
            if stored.id not in self._warned:
                self._warned.add(stored.id)
                logger.error("stored provider key %s cannot be decrypted: %s", stored.id, exc)
            return None
        return credential_header(provider, secret)

    async def _load_keys(self, account_id: str, gateway_id: str) -> GatewayKeys:
        async with self._sessions() as session:
            query = select(ProviderConfig).where(
                col(ProviderConfig.account_id) == account_id, col(ProviderConfig.gateway_id) == gateway_id
            )
            rows = (await session.exec(query)).all()
        keys = GatewayKeys()
        for row in rows:
            stored = StoredKey(row.id, bytes(row.secret_encrypted))
            keys.by_alias[(row.provider_slug, row.alias)] = stored
            if row.default_config:
                keys.defaults[row.provider_slug] = stored
        return keys

    def invalidate_keys(self, account_id: str, gateway_id: str) -> None:
        self._keys.invalidate((account_id, gateway_id))

    def clear(self) -> None:
        self._custom.clear()
        self._keys.clear()

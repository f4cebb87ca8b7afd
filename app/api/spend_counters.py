"""Spend counters follow their rules (spend-limits.md §4): a rule deleted from a gateway, or the
gateway deleted, drops its counters; a rule kept under the same id keeps them."""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request

from app.services.spend.store import SpendStore

logger = logging.getLogger("aigw.api")


def rule_ids(stored: Any) -> set[str]:
    if not isinstance(stored, dict):
        return set()
    return {str(rule["id"]) for rule in stored.get("rules") or () if isinstance(rule, dict) and "id" in rule}


async def drop_spend_counters(
    request: Request, account_id: str, gateway_id: str, rules: set[str] | None
) -> None:
    """Drop the counters of `rules` of the gateway (all of them when None). The change is already
    committed, so a store that is down is logged rather than failing the call."""
    store: SpendStore | None = getattr(request.app.state, "spend_store", None)
    if store is None or rules == set():
        return
    scope = f"{account_id}/{gateway_id}/"
    prefixes = [scope] if rules is None else [f"{scope}{rule}/" for rule in sorted(rules)]
    try:
        for prefix in prefixes:
            await store.drop(prefix)
    except Exception:
        logger.exception("could not drop the spend counters of gateway %s/%s", account_id, gateway_id)

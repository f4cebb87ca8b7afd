"""`/client/v4/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/analytics` (ours): totals
and time buckets of a gateway's logged traffic over a range — requests, errors, cache hit ratio,
tokens in and out, cost, p50/p95 duration — optionally per provider, model or metadata key.

Counts are of log rows, that is of steps attempted: a request that fell back to a second provider
counts twice, once per provider. Whole hours are read from the hourly summary (db/log_summary.py),
where durations are kept to two significant digits; see docs/observability.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from app.api.deps import AccountId, CanRead, GatewayIdPath, SessionDep
from app.api.envelope import ERROR_RESPONSES, Envelope, InvalidInput, NotFound, ok
from app.db.analytics import Range, gateway_analytics
from app.db.fields import as_utc, iso
from app.db.gateways import get_gateway
from app.db.models import utcnow

router = APIRouter(
    prefix="/client/v4/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/analytics",
    tags=["analytics"],
    responses=ERROR_RESPONSES,
)

INTERVALS = {"minute": 60, "hour": 3600, "day": 86400}
MAX_BUCKETS = 1500
GROUP_BY = r"^(provider|model|metadata\.[^\s]{1,255})$"


def _auto_interval(span: timedelta) -> str:
    if span <= timedelta(hours=3):
        return "minute"
    if span <= timedelta(days=7):
        return "hour"
    return "day"


@router.get("", response_model=Envelope[dict[str, Any]])
async def get_analytics(
    account_id: AccountId,
    gateway_id: GatewayIdPath,
    _: CanRead,
    session: SessionDep,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    interval: Literal["minute", "hour", "day"] | None = None,
    group_by: Annotated[
        str | None, Query(pattern=GROUP_BY, description="provider, model or metadata.<key>")
    ] = None,
) -> dict[str, Any]:
    """Default range: the last 24 hours. Default interval: minutes up to 3 hours, hours up to 7
    days, days beyond. Buckets cover the range without gaps (empty ones are zeros).

    With hour or day buckets, whole hours come from an hourly summary in which durations are
    rounded to two significant digits (p50/p95 within 5 %); minutes, the partial hours at the
    range's edges and `metadata.<key>` groups are computed from the rows, exactly. Start a range
    on a whole hour (and end it now or on a whole hour) to have it answered from the summary."""
    end = as_utc(end_date) if end_date else utcnow()
    start = as_utc(start_date) if start_date else end - timedelta(days=1)
    if start >= end:
        raise InvalidInput("end_date: must be after start_date")
    chosen = interval or _auto_interval(end - start)
    span = Range(start, end, INTERVALS[chosen])
    # The span test first: listing the buckets of a range of centuries would hang the server.
    too_long = (end - start).total_seconds() > (MAX_BUCKETS + 1) * INTERVALS[chosen]
    if too_long or len(span.bucket_starts()) > MAX_BUCKETS:
        raise InvalidInput(f"interval: more than {MAX_BUCKETS} buckets over this range; use a longer one")
    if await get_gateway(session, account_id, gateway_id) is None:
        raise NotFound(f"gateway {gateway_id!r} not found")
    result = await gateway_analytics(await session.connection(), (account_id, gateway_id), span, group_by)
    return ok(
        {"start_date": iso(start), "end_date": iso(end), "interval": chosen, "group_by": group_by, **result}
    )

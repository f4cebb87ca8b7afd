"""Small pieces shared by the gateway and token schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import PlainSerializer, StringConstraints

# Path-safe ids: they appear in gateway URLs (`/v1/{account}/{gateway}/…`).
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
GatewayId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]

# INTEGER columns are 32-bit on PostgreSQL; larger values must be a 400, not a driver error.
INT32_MAX = 2**31 - 1


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken to be UTC (that is how SQLite hands them back)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime) -> str:
    return as_utc(value).isoformat().replace("+00:00", "Z")


# A datetime that always leaves the API as an ISO 8601 string in UTC with a `Z`.
UtcDatetime = Annotated[datetime, PlainSerializer(iso, return_type=str)]

"""`/client/v4/accounts/{account_id}/dlp/profiles`: the built-in DLP profiles (dlp.md §2), read
only, in the SDK's `PredefinedProfile` shape (`zero_trust.dlp.profiles.list` / `get`).

The profiles are the same for every account and never change while the server runs, so the
wire forms are built once at import; custom profiles are not supported in this version.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.api.deps import AccountId, CanRead
from app.api.envelope import ERROR_RESPONSES, Envelope, NotFound, ok
from app.dlp.profiles import PROFILES, Profile

router = APIRouter(
    prefix="/client/v4/accounts/{account_id}/dlp/profiles", tags=["dlp"], responses=ERROR_RESPONSES
)


class Confidence(BaseModel):
    available: bool = True
    ai_context_available: bool = False


class ProfileEntryOut(BaseModel):
    id: str
    name: str
    type: Literal["predefined"] = "predefined"
    enabled: bool = True
    confidence: Confidence = Confidence()


class ProfileOut(BaseModel):
    id: str
    name: str
    type: Literal["predefined"] = "predefined"
    allowed_match_count: int = 0
    entries: list[ProfileEntryOut]


def _public(profile: Profile) -> dict[str, Any]:
    entries = [ProfileEntryOut(id=e.id, name=e.name) for e in profile.entries]
    return ProfileOut(id=profile.id, name=profile.name, entries=entries).model_dump()


_PUBLIC: dict[str, dict[str, Any]] = {pid: _public(profile) for pid, profile in PROFILES.items()}


@router.get("", response_model=Envelope[list[ProfileOut]])
async def list_profiles(
    account_id: AccountId,
    _: CanRead,
    # The SDK's `all` (include hosted integration profiles) changes nothing: there are none here.
    all: Annotated[bool | None, Query()] = None,
) -> dict[str, Any]:
    return ok(list(_PUBLIC.values()))


@router.get("/{profile_id}", response_model=Envelope[ProfileOut])
async def get_profile(account_id: AccountId, profile_id: str, _: CanRead) -> dict[str, Any]:
    profile = _PUBLIC.get(profile_id)
    if profile is None:
        raise NotFound(f"dlp profile {profile_id!r} not found")
    return ok(profile)

"""The DLP management surface through the official `cloudflare` SDK against a running gateway:
the built-in profiles (`zero_trust.dlp.profiles.list` / `get`, dlp.md §2) and the gateway field
`dlp` written with `ai_gateway.create` / `update` in both SDK shapes and read back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cloudflare
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, ADMIN_HEADERS, api_client, running_gateway, unique

PROFILES = f"/client/v4/accounts/{ACCT}/dlp/profiles"
BUILT_IN = ["credit_card", "us_ssn", "email", "phone", "iban", "aws_keys", "api_keys", "private_keys"]
# The SDK's ai_gateway.create / update require these.
GATEWAY_FIELDS: dict[str, Any] = {
    "cache_invalidate_on_update": False,
    "cache_ttl": 0,
    "collect_logs": True,
    "rate_limiting_interval": 0,
    "rate_limiting_limit": 0,
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[Any]:
    with (
        running_gateway(tmp_path_factory.mktemp("dlp-mgmt"), fake_upstream.url) as server,
        api_client(server) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def cf(api: Any) -> Iterator[cloudflare.Cloudflare]:
    client = cloudflare.Cloudflare(
        api_token=ADMIN_TOKEN, base_url=f"{api.server.url}/client/v4", max_retries=0
    )
    yield client
    client.close()


def test_the_sdk_lists_the_eight_built_in_profiles(cf: cloudflare.Cloudflare) -> None:
    profiles = list(cf.zero_trust.dlp.profiles.list(account_id=ACCT))
    assert [p.id for p in profiles] == BUILT_IN
    for profile in profiles:
        assert type(profile).__name__ == "PredefinedProfile", profile
        assert profile.type == "predefined" and profile.allowed_match_count == 0 and profile.entries


def test_the_sdk_gets_one_profile_with_its_entries(cf: cloudflare.Cloudflare) -> None:
    card = cf.zero_trust.dlp.profiles.get("credit_card", account_id=ACCT)
    assert card is not None and card.name == "Credit Card Numbers"
    assert [e.id for e in card.entries] == [
        f"credit_card.{b}" for b in ("visa", "mastercard", "amex", "discover", "jcb", "diners", "unionpay")
    ]
    with pytest.raises(cloudflare.NotFoundError):
        cf.zero_trust.dlp.profiles.get("4e2c0a52-0000-4000-8000-000000000000", account_id=ACCT)


def test_the_wire_shape_is_dlp_md_section_2(api: Any) -> None:
    response = api.http.get(PROFILES, headers=ADMIN_HEADERS, params={"all": "true"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["success"], body["errors"], body["messages"]) == (True, [], [])
    assert len(body["result"]) == 8
    ssn = api.http.get(f"{PROFILES}/us_ssn", headers=ADMIN_HEADERS).json()["result"]
    assert ssn == {
        "id": "us_ssn",
        "name": "US Social Security Numbers",
        "type": "predefined",
        "allowed_match_count": 0,
        "entries": [
            {
                "id": "us_ssn.number",
                "name": "US Social Security Number",
                "type": "predefined",
                "enabled": True,
                "confidence": {"available": True, "ai_context_available": False},
            }
        ],
    }


def test_an_unknown_profile_is_404_1002(api: Any) -> None:
    response = api.http.get(f"{PROFILES}/nope", headers=ADMIN_HEADERS)
    assert response.status_code == 404
    body = response.json()
    assert body["success"] is False and body["result"] is None
    assert [e["code"] for e in body["errors"]] == [1002]


def test_profiles_need_a_token_with_read(api: Any) -> None:
    assert api.http.get(PROFILES).status_code == 401
    run_only = api.new_token(permissions=["run"])["value"]
    denied = api.http.get(PROFILES, headers={"Authorization": f"Bearer {run_only}"})
    assert denied.status_code == 403 and denied.json()["errors"][0]["code"] == 10001
    reader = api.new_token(permissions=["read"])["value"]
    assert api.http.get(PROFILES, headers={"Authorization": f"Bearer {reader}"}).status_code == 200


SIMPLE = {"enabled": True, "action": "FLAG", "profiles": ["email", "phone"]}
POLICIES = {
    "enabled": True,
    "policies": [
        {"id": "block-secrets", "enabled": True, "action": "BLOCK", "check": ["REQUEST"],
         "profiles": ["api_keys", "private_keys", "aws_keys"]},
        {"id": "flag-pii", "enabled": False, "action": "FLAG", "check": ["REQUEST", "RESPONSE"],
         "profiles": ["email", "phone", "us_ssn", "credit_card"]},
    ],
}  # fmt: skip


def _dlp_of(model: Any) -> Any:
    dlp = model.dlp
    return dlp.model_dump(exclude_none=True) if dlp is not None else None


def test_the_sdk_writes_and_reads_back_the_dlp_field_in_both_shapes(cf: cloudflare.Cloudflare) -> None:
    gw = unique()
    created = cf.ai_gateway.create(account_id=ACCT, id=gw, dlp=SIMPLE, **GATEWAY_FIELDS)  # type: ignore[arg-type]
    assert _dlp_of(created) == SIMPLE
    assert _dlp_of(cf.ai_gateway.get(gw, account_id=ACCT)) == SIMPLE
    updated = cf.ai_gateway.update(gw, account_id=ACCT, dlp=POLICIES, **GATEWAY_FIELDS)  # type: ignore[arg-type]
    assert _dlp_of(updated) == POLICIES
    got = cf.ai_gateway.get(gw, account_id=ACCT)
    assert _dlp_of(got) == POLICIES and type(got.dlp).__name__ == "DLPUnionMember1"
    listed = [g for g in cf.ai_gateway.list(account_id=ACCT, search=gw)]
    assert [_dlp_of(g) for g in listed] == [POLICIES]


def test_the_sdk_gets_invalid_dlp_as_a_bad_request(cf: cloudflare.Cloudflare) -> None:
    bad = {"enabled": True, "action": "FLAG", "profiles": ["not-a-profile"]}
    with pytest.raises(cloudflare.BadRequestError) as raised:
        cf.ai_gateway.create(account_id=ACCT, id=unique(), dlp=bad, **GATEWAY_FIELDS)  # type: ignore[arg-type]
    assert "dlp.profiles.0: unknown profile 'not-a-profile'" in str(raised.value)

"""Gateway authentication over real HTTP (protocol.md §5, §1 `default` gateway): which tokens are
refused with 401 / 2009, which are accepted, and that gateway tokens never reach a provider."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import (
    ACCT,
    ADMIN_HEADERS,
    Api,
    error_of,
    openai_step,
    unique,
)


@pytest.fixture
def auth_gw(api: Api) -> str:
    return api.new_gateway(authentication=True)


@pytest.fixture
def token(api: Api) -> str:
    return str(api.new_token()["value"])


def call(
    api: Api, gw: str, token: str | None, account: str = ACCT, *, universal: bool = False
) -> httpx.Response:
    headers = {"cf-aig-authorization": token} if token is not None else {}
    if universal:
        return api.universal(gw, openai_step(), headers=headers, account=account)
    return api.http.post(
        f"/v1/{account}/{gw}/openai/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": "Bearer sk-provider", **headers},
    )


def bearer(value: str) -> str:
    return f"Bearer {value}"


@pytest.mark.parametrize("universal", [False, True])
def test_missing_token_is_401(api: Api, auth_gw: str, upstream: FakeUpstream, universal: bool) -> None:
    error_of(call(api, auth_gw, None, universal=universal), 401, 2009)
    error_of(call(api, auth_gw, "", universal=universal), 401, 2009)
    error_of(call(api, auth_gw, "Bearer", universal=universal), 401, 2009)
    assert upstream.count() == 0


@pytest.mark.parametrize(
    "value",
    [
        "Bearer nonsense",
        "nonsense",
        "Bearer aigw_01jzzzzzzzzzzzzzzzzzzzzzzz_secret",
        "Basic dXNlcjpwYXNz",
        bearer(ADMIN_TOKEN + "x"),
    ],
)
def test_invalid_token_is_401(api: Api, auth_gw: str, upstream: FakeUpstream, value: str) -> None:
    error_of(call(api, auth_gw, value), 401, 2009)
    assert upstream.count() == 0


def test_tampered_token_is_401(api: Api, auth_gw: str, token: str, upstream: FakeUpstream) -> None:
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    error_of(call(api, auth_gw, bearer(tampered)), 401, 2009)
    assert upstream.count() == 0


@pytest.mark.parametrize("universal", [False, True])
def test_valid_token_bearer_and_bare(
    api: Api, auth_gw: str, token: str, upstream: FakeUpstream, universal: bool
) -> None:
    assert call(api, auth_gw, bearer(token), universal=universal).status_code == 200
    assert call(api, auth_gw, token, universal=universal).status_code == 200
    assert call(api, auth_gw, f"bearer {token}", universal=universal).status_code == 200
    assert upstream.count() == 3


def test_admin_token_works(api: Api, auth_gw: str, upstream: FakeUpstream) -> None:
    assert call(api, auth_gw, bearer(ADMIN_TOKEN)).status_code == 200
    assert call(api, auth_gw, ADMIN_TOKEN).status_code == 200


def test_revoked_token_refused_within_a_second(api: Api, auth_gw: str, upstream: FakeUpstream) -> None:
    created = api.new_token()
    value = str(created["value"])
    assert call(api, auth_gw, bearer(value)).status_code == 200  # now cached by the gateway
    r = api.http.delete(f"/client/v4/accounts/{ACCT}/tokens/{created['id']}", headers=ADMIN_HEADERS)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 1.5
    while (status := call(api, auth_gw, bearer(value)).status_code) == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status == 401
    error_of(call(api, auth_gw, bearer(value)), 401, 2009)


def test_expired_token_refused(api: Api, auth_gw: str, upstream: FakeUpstream) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=1)
    value = str(api.new_token(expires_on=expires.isoformat())["value"])
    assert call(api, auth_gw, bearer(value)).status_code == 200
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
    error_of(call(api, auth_gw, bearer(value)), 401, 2009)


def test_token_of_another_account_is_401(api: Api, auth_gw: str, upstream: FakeUpstream) -> None:
    other = str(api.new_token(account="other-acct")["value"])
    error_of(call(api, auth_gw, bearer(other)), 401, 2009)
    # and the other way round: valid for its own account's gateway
    other_gw = api.new_gateway(account="other-acct", authentication=True)
    assert call(api, other_gw, bearer(other), account="other-acct").status_code == 200
    assert upstream.count() == 1


def test_token_limited_to_other_gateways_is_401(api: Api, auth_gw: str, upstream: FakeUpstream) -> None:
    allowed_gw = api.new_gateway(authentication=True)
    value = str(api.new_token(gateways=[allowed_gw])["value"])
    error_of(call(api, auth_gw, bearer(value)), 401, 2009)
    assert call(api, allowed_gw, bearer(value)).status_code == 200


def test_token_without_run_permission_is_401(api: Api, auth_gw: str, upstream: FakeUpstream) -> None:
    value = str(api.new_token(permissions=["read", "edit"])["value"])
    error_of(call(api, auth_gw, bearer(value)), 401, 2009)
    assert upstream.count() == 0


def test_auth_off_ignores_any_token(api: Api, upstream: FakeUpstream) -> None:
    gw = api.new_gateway(authentication=False)
    for value in (None, "Bearer nonsense", "garbage", bearer(ADMIN_TOKEN)):
        r = call(api, gw, value)
        assert r.status_code == 200, (value, r.text)
    assert upstream.count() == 4


def test_logs_record_whether_authenticated(
    api: Api, auth_gw: str, token: str, upstream: FakeUpstream
) -> None:
    open_gw = api.new_gateway()
    call(api, auth_gw, bearer(token))
    call(api, open_gw, bearer(token))
    db = api.db()
    assert db.wait_gateway(auth_gw)[0]["authenticated"] == 1
    assert db.wait_gateway(open_gw)[0]["authenticated"] == 0


def test_gateway_token_never_reaches_the_provider(
    api: Api, auth_gw: str, token: str, upstream: FakeUpstream
) -> None:
    assert call(api, auth_gw, bearer(token)).status_code == 200
    assert call(api, auth_gw, bearer(token), universal=True).status_code == 200
    step = openai_step({"cf-aig-authorization": bearer(token)})
    assert api.universal(auth_gw, step, headers={"cf-aig-authorization": bearer(token)}).status_code == 200
    assert upstream.count() == 3
    for rec in upstream.requests:
        assert "cf-aig-authorization" not in rec.headers
        assert token not in repr(rec.headers)
        assert token.encode() not in rec.body


# ---- the `default` gateway and unknown gateways -------------------------------------------------------


def get_gateway(api: Api, account: str, gw: str) -> httpx.Response:
    return api.http.get(f"/client/v4/accounts/{account}/ai-gateway/gateways/{gw}", headers=ADMIN_HEADERS)


def test_default_gateway_not_created_without_token(api: Api, upstream: FakeUpstream) -> None:
    account = unique("acct")
    error_of(call(api, "default", None, account), 401, 2009)
    error_of(call(api, "default", "Bearer nonsense", account), 401, 2009)
    other = str(api.new_token(account=unique("acct"))["value"])
    error_of(call(api, "default", bearer(other), account), 401, 2009)
    assert get_gateway(api, account, "default").status_code == 404
    assert upstream.count() == 0


@pytest.mark.parametrize("universal", [False, True])
def test_default_gateway_created_on_first_authenticated_request(
    api: Api, upstream: FakeUpstream, universal: bool
) -> None:
    account = unique("acct")
    value = str(api.new_token(account=account)["value"])
    assert get_gateway(api, account, "default").status_code == 404
    r = call(api, "default", bearer(value), account, universal=universal)
    assert r.status_code == 200, r.text
    created = get_gateway(api, account, "default")
    assert created.status_code == 200
    result: dict[str, Any] = created.json()["result"]
    assert result["authentication"] is True
    assert result["collect_logs"] is True
    assert not result["cache_ttl"]
    assert not result["rate_limiting_limit"]
    # authentication is on for it from now on
    error_of(call(api, "default", None, account), 401, 2009)
    assert call(api, "default", bearer(value), account).status_code == 200
    rows = api.db().wait("account_id = ? AND gateway_id = 'default'", (account,), 2)
    assert all(row["authenticated"] == 1 for row in rows)


def test_unknown_gateway_is_2001(api: Api, upstream: FakeUpstream) -> None:
    gw = unique("missing")
    error_of(call(api, gw, None), 400, 2001)
    error_of(call(api, gw, bearer(ADMIN_TOKEN), universal=True), 400, 2001)
    assert get_gateway(api, ACCT, gw).status_code == 404
    assert upstream.count() == 0

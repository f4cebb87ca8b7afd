"""Who may call the REST surface and what it answers when something is wrong: the v4 envelope with
the Cloudflare API's codes, 2009 for a credential the provider rejected (the legacy surface relays
the provider's own 401), 2042 without any credential, and `cf-aig-request-id` on every answer."""

from __future__ import annotations

from typing import Any

import pytest

from tests.rest.support import PROVIDER_KEY, Rest, new_rest, sent_credentials, v4_error
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, ADMIN_HEADERS, MESSAGES, ULID_RE, Api

CHAT = {"model": "openai/gpt-4o-mini", "messages": MESSAGES}


@pytest.fixture
def rest(api: Api, upstream: FakeUpstream) -> Rest:
    return new_rest(api, upstream)


@pytest.mark.parametrize(
    "auth",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"x-api-key": "aigw_01abcdefghjkmnpqrstvwxyz0_x"},
        {"Authorization": ""},
    ],
)
def test_missing_or_invalid_token_is_10000(rest: Rest, upstream: FakeUpstream, auth: dict[str, str]) -> None:
    headers = {"cf-aig-gateway-id": rest.gateway_id, "cf-aig-provider-key": PROVIDER_KEY, **auth}
    assert v4_error(rest.post("v1/chat/completions", CHAT, headers), 401, 10000) == "Authentication error"
    assert upstream.count() == 0


def test_token_is_required_even_on_an_open_gateway(api: Api, upstream: FakeUpstream) -> None:
    rest = new_rest(api, upstream, authentication=False)
    headers = {"cf-aig-gateway-id": rest.gateway_id, "cf-aig-provider-key": PROVIDER_KEY}
    v4_error(rest.post("v1/chat/completions", CHAT, headers), 401, 10000)
    assert rest.post("v1/chat/completions", CHAT).status_code == 200


def test_token_of_another_account_is_10000(rest: Rest, upstream: FakeUpstream) -> None:
    other = rest.api.new_token(account="other-acct")["value"]
    v4_error(
        rest.post("v1/chat/completions", CHAT, rest.headers(Authorization=f"Bearer {other}")), 401, 10000
    )


def test_token_without_run_or_for_another_gateway_is_10001(rest: Rest, upstream: FakeUpstream) -> None:
    reader = rest.api.new_token(permissions=["read"])["value"]
    v4_error(
        rest.post("v1/chat/completions", CHAT, rest.headers(Authorization=f"Bearer {reader}")), 403, 10001
    )
    elsewhere = rest.api.new_token(gateways=["some-other-gateway"])["value"]
    v4_error(
        rest.post("v1/chat/completions", CHAT, rest.headers(Authorization=f"Bearer {elsewhere}")), 403, 10001
    )
    assert upstream.count() == 0


def test_token_precedence(rest: Rest, upstream: FakeUpstream) -> None:
    """cf-aig-authorization wins over Authorization, which wins over x-api-key; none is forwarded."""
    headers = rest.headers(**{"cf-aig-authorization": f"Bearer {rest.token}", "Authorization": "Bearer bad"})
    assert rest.post("v1/chat/completions", CHAT, headers).status_code == 200
    assert "bad" not in str(sent_credentials(upstream))
    headers = rest.headers(**{"x-api-key": "bad"})  # Authorization (good) wins
    assert rest.post("v1/chat/completions", CHAT, headers).status_code == 200
    assert sent_credentials(upstream) == {"authorization": f"Bearer {PROVIDER_KEY}"}


def test_unknown_gateway_is_2001_and_default_is_made(rest: Rest, upstream: FakeUpstream) -> None:
    every = rest.api.new_token()["value"]
    headers = rest.headers(**{"cf-aig-gateway-id": "nope", "Authorization": f"Bearer {every}"})
    v4_error(rest.post("v1/chat/completions", CHAT, headers), 400, 2001)
    admin = {"Authorization": ADMIN_HEADERS["Authorization"], "cf-aig-provider-key": PROVIDER_KEY}
    response = rest.post("v1/chat/completions", CHAT, admin)  # no gateway header: `default`
    assert response.status_code == 200, response.text
    assert rest.api.db().wait("gateway_id = 'default' AND request_type = 'rest'")


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("v1/chat/completions", {"model": "nobody/model-x", "messages": MESSAGES}, 404, 7003),
        ("v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES}, 404, 7003),
        ("v1/chat/completions", {"model": "dynamic/no-such-route", "messages": MESSAGES}, 400, 2008),
        ("v1/chat/completions", {"model": "openai/gpt-4o-mini"}, 400, 2010),
        ("v1/chat/completions", [1, 2], 400, 2010),
        ("v1/embeddings", {"model": "anthropic/claude-3-5-haiku-latest", "input": "x"}, 400, 2008),
        ("v1/embeddings", {"input": "x"}, 400, 2010),
    ],
)
def test_bad_requests(
    rest: Rest, upstream: FakeUpstream, path: str, body: Any, status: int, code: int
) -> None:
    v4_error(rest.post(path, body), status, code)
    assert upstream.count() == 0


def test_not_json_and_bad_header_are_2010(rest: Rest, upstream: FakeUpstream) -> None:
    response = rest.api.http.post(
        f"/client/v4/accounts/{ACCT}/ai/v1/chat/completions", content=b"{not json", headers=rest.headers()
    )
    v4_error(response, 400, 2010)
    v4_error(rest.post("v1/chat/completions", CHAT, rest.headers(**{"cf-aig-cache-ttl": "abc"})), 400, 2010)


@pytest.mark.parametrize("status", [401, 403])
def test_provider_rejecting_the_credential_is_2009_here_and_relayed_on_legacy(
    rest: Rest, upstream: FakeUpstream, status: int
) -> None:
    response = rest.post("v1/chat/completions", CHAT, rest.headers(**{"x-fake-status": str(status)}))
    v4_error(response, 401, 2009)
    assert upstream.count() == 1  # no retry
    assert response.headers["cf-aig-log-id"] == response.headers["cf-aig-request-id"]
    legacy = rest.api.http.post(
        f"/v1/{ACCT}/{rest.gateway_id}/compat/chat/completions", json=CHAT,
        headers={"cf-aig-authorization": f"Bearer {rest.token}", "Authorization": "Bearer sk-x",
                 "x-fake-status": str(status)},
    )  # fmt: skip
    assert legacy.status_code == status and "error" in legacy.json()  # the provider's own answer
    assert ULID_RE.match(legacy.headers["cf-aig-request-id"])


def test_other_provider_errors_pass_through(rest: Rest, upstream: FakeUpstream) -> None:
    response = rest.post(
        "v1/embeddings", {"model": "openai/x", "input": "x"}, rest.headers(**{"x-fake-status": "429"})
    )
    assert response.status_code == 429 and "error" in response.json()


def test_no_credential_is_2042_and_a_stored_key_is_used(rest: Rest, upstream: FakeUpstream) -> None:
    headers = {"Authorization": f"Bearer {rest.token}", "cf-aig-gateway-id": rest.gateway_id}
    v4_error(rest.post("v1/chat/completions", CHAT, headers), 400, 2042)
    assert upstream.count() == 0
    stored = rest.api.http.post(
        f"/client/v4/accounts/{ACCT}/ai-gateway/gateways/{rest.gateway_id}/provider_configs",
        json={
            "provider_slug": "openai",
            "alias": "default",
            "secret": "sk-stored-456",
            "default_config": True,
        },
        headers=ADMIN_HEADERS,
    )
    assert stored.status_code == 200, stored.text
    assert rest.post("v1/chat/completions", CHAT, headers).status_code == 200
    assert sent_credentials(upstream) == {"authorization": "Bearer sk-stored-456"}
    # A request's own key wins over the stored one.
    assert rest.post("v1/chat/completions", CHAT).status_code == 200
    assert sent_credentials(upstream) == {"authorization": f"Bearer {PROVIDER_KEY}"}


def test_request_id_on_every_legacy_answer(rest: Rest, upstream: FakeUpstream) -> None:
    step = {"provider": "openai", "endpoint": "chat/completions", "headers": {"Authorization": "Bearer sk-x"},
            "query": CHAT}  # fmt: skip
    ok = rest.api.universal(rest.gateway_id, step)
    assert ok.status_code == 200, ok.text
    assert ok.headers["cf-aig-request-id"] == ok.headers["cf-aig-log-id"]
    closed = rest.api.new_gateway(authentication=True)
    refused = rest.api.universal(closed, step)
    assert refused.status_code == 401 and ULID_RE.match(refused.headers["cf-aig-request-id"])
    missing = rest.api.universal("no-such-gateway", step)
    assert missing.status_code == 400 and ULID_RE.match(missing.headers["cf-aig-request-id"])

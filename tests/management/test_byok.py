"""Stored provider keys (BYOK): the API never shows a secret, secrets are encrypted at rest, and a
request without a provider credential on an authenticated gateway gets the stored key in its
provider's header (assertions on what the fake upstream received). A request's own credential
wins; `cf-aig-byok-alias` picks a key (unknown alias: 2040); rotation applies to the next request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.auth.secretbox import SecretBox, SecretKeyMissing, SecretUndecryptable
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, error_of
from tests.support.management import (
    BACKENDS,
    SECRET_KEY,
    Mgmt,
    errors_of,
    management_server,
    mgmt_client,
    query_db,
)

SECRET = "sk-stored-0123456789abcdefXYZ"


@pytest.fixture(scope="module", params=BACKENDS)
def mgmt(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream
) -> Iterator[Mgmt]:
    base: Path = tmp_path_factory.mktemp("byok")
    with management_server(request.param, base, fake_upstream.url) as server, mgmt_client(server) as client:
        yield client


@pytest.fixture(scope="module")
def run_token(mgmt: Mgmt) -> str:
    return mgmt.new_token(["run"])


def add_key(
    m: Mgmt, gw: str, provider: str = "openai", secret: str = SECRET, **fields: Any
) -> dict[str, Any]:
    body = {"provider_slug": provider, "alias": "default", "secret": secret, **fields}
    result: dict[str, Any] = m.ok("POST", m.gw_path(gw, "/provider_configs"), json=body)["result"]
    return result


def chat(
    m: Mgmt, gw: str, token: str | None, headers: dict[str, str] | None = None, provider: str = "openai"
) -> int:
    auth = {"cf-aig-authorization": f"Bearer {token}"} if token else {}
    r = m.http.post(
        f"/v1/{ACCT}/{gw}/{provider}/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={**auth, **(headers or {})},
    )
    return r.status_code


# ---- the API -------------------------------------------------------------------------------------------


def test_create_list_get_show_only_a_preview(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway(authentication=True)
    created = add_key(mgmt, gw)
    assert created["secret_preview"] == "sk-s...fXYZ"
    assert "secret" not in created and SECRET not in str(created)
    assert set(created) >= {"id", "alias", "default_config", "gateway_id", "provider_slug", "secret_id",
                            "secret_preview", "modified_at", "created_at"}  # fmt: skip
    listed = mgmt.ok("GET", mgmt.gw_path(gw, "/provider_configs"))
    assert [c["id"] for c in listed["result"]] == [created["id"]]
    assert listed["result_info"]["total_count"] == 1
    got = mgmt.ok("GET", mgmt.gw_path(gw, f"/provider_configs/{created['id']}"))["result"]
    assert got == created
    assert SECRET not in str(listed) + str(got)


def test_secret_is_encrypted_at_rest(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway(authentication=True)
    created = add_key(mgmt, gw)
    rows = query_db(
        mgmt.server.settings.database_url,
        "SELECT secret_encrypted, secret_preview FROM provider_configs WHERE id = :id",
        {"id": created["id"]},
    )
    stored, preview = bytes(rows[0][0]), rows[0][1]
    assert SECRET.encode() not in stored and b"0123456789" not in stored
    assert len(stored) >= len(SECRET) + 16 + 12  # GCM tag and nonce
    assert preview == "sk-s...fXYZ"
    box = SecretBox(SECRET_KEY)
    context = f"provider_configs/{ACCT}/{gw}/{created['id']}"
    assert box.decrypt(stored, context) == SECRET
    with pytest.raises(SecretUndecryptable):
        box.decrypt(stored, f"provider_configs/{ACCT}/{gw}/another-row")  # bound to its row
    with pytest.raises(SecretUndecryptable):
        SecretBox("another-server-key-0123456789").decrypt(stored, context)
    tampered = stored[:-1] + bytes([stored[-1] ^ 1])
    with pytest.raises(SecretUndecryptable):
        box.decrypt(tampered, context)


def test_secret_box_without_key_refuses() -> None:
    box = SecretBox(None)
    assert not box.enabled
    with pytest.raises(SecretKeyMissing):
        box.encrypt("x", "c")
    with pytest.raises(ValueError):
        SecretBox("short")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"provider_slug": "nope", "secret": "x"}, "provider_slug"),
        ({"provider_slug": "custom-Bad_Slug", "secret": "x"}, "provider_slug"),
        ({"provider_slug": "openai"}, "secret"),
        ({"provider_slug": "openai", "secret": ""}, "secret"),
        ({"provider_slug": "openai", "secret": " padded "}, "secret"),
        ({"provider_slug": "openai", "secret": "x", "alias": "has space"}, "alias"),
        ({"provider_slug": "openai", "secret": "x", "secret_id": "store-ref"}, "secret_id"),
        ({"provider_slug": "openai", "secret": "x", "default_config": "maybe"}, "default_config"),
        ({"provider_slug": "openai", "secret": "x", "rate_limit": -1}, "rate_limit"),
    ],
)
def test_validation(mgmt: Mgmt, body: dict[str, Any], field: str) -> None:
    gw = mgmt.new_gateway()
    messages = errors_of(mgmt.call("POST", mgmt.gw_path(gw, "/provider_configs"), json=body))
    assert any(m.startswith(f"{field}:") for m in messages), messages


def test_conflicts_and_unknown_ids(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    first = add_key(mgmt, gw)
    errors_of(
        mgmt.call(
            "POST", mgmt.gw_path(gw, "/provider_configs"), json={"provider_slug": "openai", "secret": "y"}
        ),
        409,
    )
    add_key(mgmt, gw, provider="anthropic")  # the same alias for another provider is fine
    second = add_key(mgmt, gw, alias="backup")
    errors_of(
        mgmt.call("PUT", mgmt.gw_path(gw, f"/provider_configs/{second['id']}"), json={"alias": "default"}),
        409,
    )
    errors_of(mgmt.call("GET", mgmt.gw_path(gw, "/provider_configs/01arz3ndektsv4rrffq69g5fav")), 404)
    errors_of(mgmt.call("GET", mgmt.gw_path(gw, "/provider_configs/NOT-AN-ID")), 400)
    errors_of(mgmt.call("GET", mgmt.gw_path("no-such-gw", "/provider_configs")), 404)
    other = mgmt.new_gateway()
    errors_of(mgmt.call("GET", mgmt.gw_path(other, f"/provider_configs/{first['id']}")), 404)


def test_no_server_key_means_no_stored_keys(tmp_path: Path, upstream: FakeUpstream) -> None:
    with (
        management_server("sqlite", tmp_path, upstream.url, secret_key=None) as server,
        mgmt_client(server) as m,
    ):
        gw = m.new_gateway()
        messages = errors_of(
            m.call(
                "POST", m.gw_path(gw, "/provider_configs"), json={"provider_slug": "openai", "secret": "x"}
            )
        )
        assert "AIGW_SECRET_KEY" in messages[0]
        assert m.ok("GET", m.gw_path(gw, "/provider_configs"))["result"] == []


# ---- injection -----------------------------------------------------------------------------------------


def test_stored_key_injected_when_the_request_has_none(
    mgmt: Mgmt, run_token: str, upstream: FakeUpstream
) -> None:
    gw = mgmt.new_gateway(authentication=True)
    add_key(mgmt, gw)
    assert chat(mgmt, gw, run_token) == 200
    assert upstream.last.headers["authorization"] == f"Bearer {SECRET}"
    assert "cf-aig-authorization" not in upstream.last.headers


def test_the_requests_own_credential_wins(mgmt: Mgmt, run_token: str, upstream: FakeUpstream) -> None:
    gw = mgmt.new_gateway(authentication=True)
    add_key(mgmt, gw)
    assert chat(mgmt, gw, run_token, {"Authorization": "Bearer sk-client"}) == 200
    assert upstream.last.headers["authorization"] == "Bearer sk-client"


def test_unauthenticated_gateway_gets_no_stored_key(mgmt: Mgmt, upstream: FakeUpstream) -> None:
    gw = mgmt.new_gateway(authentication=False)
    add_key(mgmt, gw)
    assert chat(mgmt, gw, None) == 200
    assert "authorization" not in upstream.last.headers


HI = [{"role": "user", "content": "hi"}]
PROVIDER_STEPS = [
    ("anthropic", "v1/messages", {"model": "claude-3-5-haiku-latest", "max_tokens": 8, "messages": HI},
     "x-api-key", SECRET),
    ("google-ai-studio", "v1beta/models/gemini-2.0-flash:generateContent",
     {"contents": [{"parts": [{"text": "hi"}]}]}, "x-goog-api-key", SECRET),
    ("azure-openai", "res/dep/chat/completions?api-version=2024-06-01", {"messages": HI}, "api-key", SECRET),
    ("workers-ai", "@cf/meta/llama-3.1-8b-instruct", {"prompt": "hi"}, "authorization", f"Bearer {SECRET}"),
    ("elevenlabs", "v1/text-to-speech/voice", {"text": "hi"}, "xi-api-key", SECRET),
    ("groq", "chat/completions", {"model": "llama", "messages": HI}, "authorization", f"Bearer {SECRET}"),
]  # fmt: skip


@pytest.mark.parametrize(("provider", "endpoint", "query", "header", "value"), PROVIDER_STEPS)
def test_each_provider_gets_its_own_header(
    mgmt: Mgmt,
    run_token: str,
    upstream: FakeUpstream,
    provider: str,
    endpoint: str,
    query: dict[str, Any],
    header: str,
    value: str,
) -> None:
    gw = mgmt.new_gateway(authentication=True)
    add_key(mgmt, gw, provider=provider)
    step = {"provider": provider, "endpoint": endpoint, "headers": {}, "query": query}
    r = mgmt.universal(gw, step, {"cf-aig-authorization": run_token})
    assert r.status_code == 200, r.text
    assert upstream.last.headers[header] == value
    others = {"authorization", "x-api-key", "x-goog-api-key", "api-key", "xi-api-key"} - {header}
    assert not others & set(upstream.last.headers)


def test_alias_header_picks_a_key(mgmt: Mgmt, run_token: str, upstream: FakeUpstream) -> None:
    gw = mgmt.new_gateway(authentication=True)
    add_key(mgmt, gw)
    add_key(mgmt, gw, secret="sk-backup-key-00000000", alias="backup")
    assert chat(mgmt, gw, run_token, {"cf-aig-byok-alias": "backup"}) == 200
    assert upstream.last.headers["authorization"] == "Bearer sk-backup-key-00000000"
    assert chat(mgmt, gw, run_token) == 200
    assert upstream.last.headers["authorization"] == f"Bearer {SECRET}"
    upstream.reset()
    r = mgmt.http.post(
        f"/v1/{ACCT}/{gw}/openai/chat/completions",
        json={"model": "m", "messages": []},
        headers={"cf-aig-authorization": run_token, "cf-aig-byok-alias": "nope"},
    )
    assert "nope" in error_of(r, 400, 2040)
    assert upstream.requests == []  # refused before any upstream call


def test_default_config_key_used_without_a_default_alias(
    mgmt: Mgmt, run_token: str, upstream: FakeUpstream
) -> None:
    gw = mgmt.new_gateway(authentication=True)
    add_key(mgmt, gw, secret="sk-not-default-0000", alias="other")
    add_key(mgmt, gw, secret="sk-primary-key-1111", alias="primary", default_config=True)
    assert chat(mgmt, gw, run_token) == 200
    assert upstream.last.headers["authorization"] == "Bearer sk-primary-key-1111"


def test_no_key_for_the_provider_means_no_header(mgmt: Mgmt, run_token: str, upstream: FakeUpstream) -> None:
    gw = mgmt.new_gateway(authentication=True)
    add_key(mgmt, gw, provider="anthropic")
    assert chat(mgmt, gw, run_token) == 200
    assert "authorization" not in upstream.last.headers


def test_rotation_and_deletion_apply_to_the_next_request(
    mgmt: Mgmt, run_token: str, upstream: FakeUpstream
) -> None:
    gw = mgmt.new_gateway(authentication=True)
    key = add_key(mgmt, gw)
    assert chat(mgmt, gw, run_token) == 200
    assert upstream.last.headers["authorization"] == f"Bearer {SECRET}"
    rotated = mgmt.ok(
        "PUT", mgmt.gw_path(gw, f"/provider_configs/{key['id']}"), json={"secret": "sk-rotated-2222222"}
    )
    assert rotated["result"]["secret_preview"] == "sk-r...2222"
    assert chat(mgmt, gw, run_token) == 200
    assert upstream.last.headers["authorization"] == "Bearer sk-rotated-2222222"
    mgmt.ok("DELETE", mgmt.gw_path(gw, f"/provider_configs/{key['id']}"))
    assert chat(mgmt, gw, run_token) == 200
    assert "authorization" not in upstream.last.headers


def test_stored_key_never_reaches_the_logs(mgmt: Mgmt, run_token: str, upstream: FakeUpstream) -> None:
    gw = mgmt.new_gateway(authentication=True)
    add_key(mgmt, gw)
    assert chat(mgmt, gw, run_token) == 200
    rows = mgmt.wait_logs(gw, 1)
    detail = mgmt.ok("GET", mgmt.gw_path(gw, f"/logs/{rows[0]['id']}"))["result"]
    assert SECRET not in str(detail)
    dump = query_db(mgmt.server.settings.database_url, "SELECT * FROM logs WHERE gateway_id = :g", {"g": gw})
    assert SECRET not in repr(dump) and SECRET.encode() not in b"".join(
        v for row in dump for v in row if isinstance(v, bytes)
    )


def test_gateway_deletion_deletes_its_keys(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway(authentication=True)
    add_key(mgmt, gw)
    mgmt.ok("DELETE", mgmt.gw_path(gw))
    left = query_db(
        mgmt.server.settings.database_url,
        "SELECT count(*) FROM provider_configs WHERE gateway_id = :g",
        {"g": gw},
    )
    assert left == [(0,)]
    mgmt.new_gateway(id=gw)
    assert mgmt.ok("GET", mgmt.gw_path(gw, "/provider_configs"))["result"] == []


def test_gateway_limited_tokens(mgmt: Mgmt) -> None:
    mine, theirs = mgmt.new_gateway(), mgmt.new_gateway()
    token = mgmt.new_token(["read", "edit"], [mine])
    body = {"provider_slug": "openai", "secret": "sk-limited-0000"}
    assert (
        mgmt.call("POST", mgmt.gw_path(mine, "/provider_configs"), token=token, json=body).status_code == 200
    )
    errors_of(mgmt.call("POST", mgmt.gw_path(theirs, "/provider_configs"), token=token, json=body), 403)
    errors_of(mgmt.call("GET", mgmt.gw_path(theirs, "/provider_configs"), token=token), 403)
    run_only = mgmt.new_token(["run"])
    errors_of(mgmt.call("GET", mgmt.gw_path(mine, "/provider_configs"), token=run_only), 403)
    reader = mgmt.new_token(["read"])
    assert mgmt.call("GET", mgmt.gw_path(mine, "/provider_configs"), token=reader).status_code == 200
    errors_of(mgmt.call("POST", mgmt.gw_path(mine, "/provider_configs"), token=reader, json=body), 403)

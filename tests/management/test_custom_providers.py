"""Custom providers: the API (https only; http and private addresses only when the development
setting allows private destinations, tests/http/test_custom_provider_destinations.py), and
`custom-{slug}` in provider paths and universal steps, resolved per account; unknown, disabled or
deleted ones are error 2008."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, MESSAGES, error_of, unique
from tests.support.management import BACKENDS, Mgmt, errors_of, management_server, mgmt_client

PATH = f"/client/v4/accounts/{ACCT}/ai-gateway/custom-providers"


@pytest.fixture(scope="module", params=BACKENDS)
def mgmt(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream
) -> Iterator[Mgmt]:
    base: Path = tmp_path_factory.mktemp("custom")
    with management_server(request.param, base, fake_upstream.url) as server, mgmt_client(server) as client:
        yield client


def create(m: Mgmt, base_url: str, **fields: Any) -> dict[str, Any]:
    body = {"name": "Local model", "slug": unique("cp"), "base_url": base_url, **fields}
    result: dict[str, Any] = m.ok("POST", PATH, json=body)["result"]
    return result


def chat(m: Mgmt, gw: str, provider: str, headers: dict[str, str] | None = None) -> Any:
    return m.http.post(
        f"/v1/{ACCT}/{gw}/{provider}/chat/completions",
        json={"model": "local-model", "messages": MESSAGES},
        headers={"Authorization": "Bearer sk-local", **(headers or {})},
    )


def test_crud(mgmt: Mgmt) -> None:
    created = create(mgmt, "https://llm.example.com/v1/", description="mine")
    assert created["base_url"] == "https://llm.example.com/v1"  # trailing slash dropped
    assert created["enable"] is True and created["description"] == "mine"
    assert set(created) >= {"id", "name", "slug", "base_url", "created_at", "modified_at"}
    got = mgmt.ok("GET", f"{PATH}/{created['id']}")["result"]
    assert got == created
    listed = mgmt.ok("GET", PATH, params={"search": created["slug"]})
    assert [p["id"] for p in listed["result"]] == [created["id"]] and listed["result_info"][
        "total_count"
    ] == 1
    updated = mgmt.ok("PUT", f"{PATH}/{created['id']}", json={"name": "Renamed", "enable": False})["result"]
    assert (updated["name"], updated["enable"], updated["slug"]) == ("Renamed", False, created["slug"])
    assert mgmt.ok("GET", PATH, params={"search": created["slug"], "enable": "true"})["result"] == []
    assert mgmt.ok("DELETE", f"{PATH}/{created['id']}")["result"]["id"] == created["id"]
    errors_of(mgmt.call("GET", f"{PATH}/{created['id']}"), 404)
    errors_of(mgmt.call("GET", f"{PATH}/not-an-id"), 400)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"base_url": "ftp://llm.example.com"}, "base_url"),
        ({"base_url": "llm.example.com"}, "base_url"),
        ({"base_url": "https://user:pw@llm.example.com"}, "base_url"),
        ({"base_url": "https://llm.example.com/v1?x=1"}, "base_url"),
        ({"slug": "Upper"}, "slug"),
        ({"slug": "has space"}, "slug"),
        ({"slug": ""}, "slug"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
    ],
)
def test_validation(mgmt: Mgmt, body: dict[str, Any], field: str) -> None:
    full = {"name": "n", "slug": unique("cp"), "base_url": "https://llm.example.com", **body}
    messages = errors_of(mgmt.call("POST", PATH, json=full))
    assert any(m.startswith(f"{field}:") for m in messages), messages


def test_duplicate_slug_is_409(mgmt: Mgmt) -> None:
    created = create(mgmt, "https://a.example.com")
    errors_of(
        mgmt.call(
            "POST", PATH, json={"name": "b", "slug": created["slug"], "base_url": "https://b.example.com"}
        ),
        409,
    )


def test_http_to_loopback_needs_the_setting(tmp_path: Path, upstream: FakeUpstream) -> None:
    with (
        management_server("sqlite", tmp_path, upstream.url, allow_http_custom_providers=False) as server,
        mgmt_client(server) as m,
    ):
        messages = errors_of(
            m.call("POST", PATH, json={"name": "n", "slug": "local", "base_url": upstream.url})
        )
        assert messages[0].startswith("base_url:") and "https" in messages[0]
        assert (
            m.call(
                "POST", PATH, json={"name": "n", "slug": "remote", "base_url": "https://x.example.com"}
            ).status_code
            == 200
        )


def test_permissions(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    body = {"name": "n", "slug": unique("cp"), "base_url": "https://x.example.com"}
    limited = mgmt.new_token(["read", "edit"], [gw])
    errors_of(mgmt.call("POST", PATH, token=limited, json=body), 403)
    assert mgmt.call("GET", PATH, token=limited).status_code == 200
    reader = mgmt.new_token(["read"])
    errors_of(mgmt.call("POST", PATH, token=reader, json=body), 403)
    errors_of(mgmt.call("GET", PATH, token=mgmt.new_token(["run"])), 403)
    editor = mgmt.new_token(["edit"])
    assert mgmt.call("POST", PATH, token=editor, json=body).status_code == 200


def test_provider_path_and_universal_step(mgmt: Mgmt, upstream: FakeUpstream) -> None:
    provider = create(mgmt, f"{upstream.url}/custom/v1")
    slug = f"custom-{provider['slug']}"
    gw = mgmt.new_gateway()
    r = chat(mgmt, gw, slug)
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "chat.completion"
    assert upstream.last.path == "/custom/v1/chat/completions"
    assert upstream.last.headers["authorization"] == "Bearer sk-local"
    step = {"provider": slug, "endpoint": "chat/completions", "headers": {"Authorization": "Bearer sk-u"},
            "query": {"model": "local-model", "messages": MESSAGES}}  # fmt: skip
    r = mgmt.universal(gw, step)
    assert r.status_code == 200 and upstream.last.path == "/custom/v1/chat/completions"
    rows = mgmt.wait_logs(gw, 2)
    assert {row["provider"] for row in rows} == {slug}
    assert {row["model"] for row in rows} == {"local-model"}


def test_unknown_disabled_and_deleted_are_2008(mgmt: Mgmt, upstream: FakeUpstream) -> None:
    gw = mgmt.new_gateway()
    error_of(chat(mgmt, gw, "custom-never-created"), 400, 2008)
    provider = create(mgmt, f"{upstream.url}/custom/v1")
    slug = f"custom-{provider['slug']}"
    assert chat(mgmt, gw, slug).status_code == 200
    mgmt.ok("PUT", f"{PATH}/{provider['id']}", json={"enable": False})
    error_of(chat(mgmt, gw, slug), 400, 2008)
    mgmt.ok("PUT", f"{PATH}/{provider['id']}", json={"enable": True, "base_url": f"{upstream.url}/moved"})
    assert chat(mgmt, gw, slug).status_code == 200
    assert upstream.last.path == "/moved/chat/completions"
    mgmt.ok("DELETE", f"{PATH}/{provider['id']}")
    error_of(chat(mgmt, gw, slug), 400, 2008)


def test_custom_providers_belong_to_their_account(mgmt: Mgmt, upstream: FakeUpstream) -> None:
    provider = create(mgmt, f"{upstream.url}/custom/v1")
    other = Mgmt(mgmt.server, mgmt.http, account="other-account")
    gw = other.new_gateway()
    r = other.http.post(
        f"/v1/other-account/{gw}/custom-{provider['slug']}/chat/completions",
        json={"model": "m", "messages": MESSAGES},
    )
    error_of(r, 400, 2008)
    errors_of(
        mgmt.call("GET", f"/client/v4/accounts/other-account/ai-gateway/custom-providers/{provider['id']}"),
        404,
    )


def test_stored_key_for_a_custom_provider(mgmt: Mgmt, upstream: FakeUpstream) -> None:
    provider = create(mgmt, f"{upstream.url}/custom/v1")
    slug = f"custom-{provider['slug']}"
    gw = mgmt.new_gateway(authentication=True)
    body = {"provider_slug": slug, "secret": "sk-custom-stored-0000"}
    mgmt.ok("POST", mgmt.gw_path(gw, "/provider_configs"), json=body)
    token = mgmt.new_token(["run"])
    r = mgmt.http.post(
        f"/v1/{ACCT}/{gw}/{slug}/chat/completions",
        json={"model": "m", "messages": MESSAGES},
        headers={"cf-aig-authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200
    assert upstream.last.headers["authorization"] == "Bearer sk-custom-stored-0000"

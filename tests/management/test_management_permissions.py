"""The permission matrix of the management endpoints added for logs, stored keys, custom providers
and analytics: `read` reads, `edit` writes, `run` gets 403, no token 401; gateway-limited tokens
reach only their gateways (and cannot change account-wide custom providers); tokens of another
account get 403."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT, openai_step, unique
from tests.support.management import BACKENDS, Mgmt, management_server, mgmt_client

CUSTOM = f"/client/v4/accounts/{ACCT}/ai-gateway/custom-providers"


@dataclass
class World:
    m: Mgmt
    gw: str
    other_gw: str
    log_id: str
    config_id: str
    custom_id: str
    tokens: dict[str, str | None]


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream
) -> Iterator[World]:
    base: Path = tmp_path_factory.mktemp("perms")
    with management_server(request.param, base, fake_upstream.url) as server, mgmt_client(server) as m:
        gw, other_gw = m.new_gateway(), m.new_gateway()
        response = m.universal(gw, openai_step())
        log_id = response.headers["cf-aig-log-id"]
        m.wait_logs(gw, 1)
        config = m.ok(
            "POST",
            m.gw_path(gw, "/provider_configs"),
            json={"provider_slug": "openai", "secret": "sk-x-1234"},
        )
        custom = m.ok(
            "POST", CUSTOM, json={"name": "n", "slug": unique("cp"), "base_url": "https://x.example.com"}
        )
        foreign = Mgmt(server, m.http, account="acct2")
        tokens: dict[str, str | None] = {
            "admin": None,
            "read": m.new_token(["read"]),
            "edit": m.new_token(["edit"]),
            "read+edit": m.new_token(["read", "edit"]),
            "run": m.new_token(["run"]),
            "limited": m.new_token(["read", "edit"], [gw]),
            "limited-other": m.new_token(["read", "edit"], [other_gw]),
            "other-account": foreign.new_token(["read", "edit"]),
            "garbage": "aigw_not-a-token",
        }
        yield World(m, gw, other_gw, log_id, config["result"]["id"], custom["result"]["id"], tokens)


Call = tuple[str, Callable[[World], str], Callable[[], Any] | None]

READS: list[Call] = [
    ("GET", lambda w: w.m.gw_path(w.gw, "/logs"), None),
    ("GET", lambda w: w.m.gw_path(w.gw, f"/logs/{w.log_id}"), None),
    ("GET", lambda w: w.m.gw_path(w.gw, f"/logs/{w.log_id}/request"), None),
    ("GET", lambda w: w.m.gw_path(w.gw, f"/logs/{w.log_id}/response"), None),
    ("GET", lambda w: w.m.gw_path(w.gw, "/analytics"), None),
    ("GET", lambda w: w.m.gw_path(w.gw, "/provider_configs"), None),
    ("GET", lambda w: w.m.gw_path(w.gw, f"/provider_configs/{w.config_id}"), None),
]
WRITES: list[Call] = [
    ("PATCH", lambda w: w.m.gw_path(w.gw, f"/logs/{w.log_id}"), lambda: {"score": 1}),
    ("DELETE", lambda w: w.m.gw_path(w.gw, "/logs") + "?" + "provider=none-such", None),
    ("POST", lambda w: w.m.gw_path(w.gw, "/provider_configs"),
     lambda: {"provider_slug": "openai", "alias": unique("a"), "secret": "sk-y-1234"}),
    ("PUT", lambda w: w.m.gw_path(w.gw, f"/provider_configs/{w.config_id}"), lambda: {"rate_limit": 1}),
    ("DELETE", lambda w: w.m.gw_path(w.gw, "/provider_configs/01arz3ndektsv4rrffq69g5fav"), None),
]  # fmt: skip
ACCOUNT_READS: list[Call] = [
    ("GET", lambda w: CUSTOM, None),
    ("GET", lambda w: f"{CUSTOM}/{w.custom_id}", None),
]
ACCOUNT_WRITES: list[Call] = [
    (
        "POST",
        lambda w: CUSTOM,
        lambda: {"name": "n", "slug": unique("cp"), "base_url": "https://y.example.com"},
    ),
    ("PUT", lambda w: f"{CUSTOM}/{w.custom_id}", lambda: {"description": "d"}),
    ("DELETE", lambda w: f"{CUSTOM}/01arz3ndektsv4rrffq69g5fav", None),
]

# token → what it may do: (gateway reads, gateway writes, account reads, account writes)
MATRIX: dict[str, tuple[bool, bool, bool, bool]] = {
    "admin": (True, True, True, True),
    "read": (True, False, True, False),
    "edit": (False, True, False, True),
    "read+edit": (True, True, True, True),
    "run": (False, False, False, False),
    "limited": (True, True, True, False),
    "limited-other": (False, False, True, False),
    "other-account": (False, False, False, False),
    "garbage": (False, False, False, False),
}


def _status(w: World, token_name: str, call: Call) -> int:
    method, path, body = call
    token = w.tokens[token_name]
    headers = {"Authorization": f"Bearer {token}"} if token else {"Authorization": "Bearer test-admin-token"}
    response = w.m.http.request(method, path(w), headers=headers, json=body() if body else None)
    assert response.status_code < 500, response.text
    if response.status_code in (401, 403):
        assert response.json()["errors"][0]["code"] == (10000 if response.status_code == 401 else 10001)
    return response.status_code


@pytest.mark.parametrize("token_name", sorted(MATRIX))
def test_matrix(world: World, token_name: str) -> None:
    expected = MATRIX[token_name]
    denied = 401 if token_name == "garbage" else 403
    for allowed, calls in zip(expected, (READS, WRITES, ACCOUNT_READS, ACCOUNT_WRITES), strict=True):
        for call in calls:
            status = _status(world, token_name, call)
            if allowed:
                assert status not in (401, 403), (token_name, call[0], call[1](world), status)
            else:
                assert status == denied, (token_name, call[0], call[1](world), status)


def test_no_token_is_401(world: World) -> None:
    for method, path, body in [*READS, *WRITES, *ACCOUNT_READS, *ACCOUNT_WRITES]:
        response = world.m.http.request(method, path(world), json=body() if body else None)
        assert response.status_code == 401, (method, path(world))


def test_limited_token_sees_only_its_gateways_in_lists(world: World) -> None:
    token = world.tokens["limited"]
    listed = world.m.http.get(
        f"/client/v4/accounts/{ACCT}/ai-gateway/gateways", headers={"Authorization": f"Bearer {token}"}
    ).json()["result"]
    assert [g["id"] for g in listed] == [world.gw]

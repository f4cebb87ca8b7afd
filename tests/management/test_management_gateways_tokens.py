"""Management API for gateways and tokens: v4 envelopes, CRUD, the permission matrix, and errors
(400 per bad field, 404 unknown ids, 401/403) — never a bare 500 for bad input.

The app is assembled here from the routers and handlers under test (the real lifespan is not needed),
on a migrated SQLite file, and driven in process through httpx's ASGI transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api import gateways, tokens
from app.api.envelope import install_management_error_handlers
from app.auth.principals import identify
from app.core.errors import Unauthorized
from app.core.settings import Settings
from app.db.migrate import upgrade_async
from app.db.models import Log, Token
from app.db.session import create_engine, session_factory
from app.services.config import ConfigCache
from tests.support.management import v4_errors

ADMIN = "test-admin-token"
ACCT = "acct1"
GW = f"/client/v4/accounts/{ACCT}/ai-gateway/gateways"
TOK = f"/client/v4/accounts/{ACCT}/tokens"


@dataclass
class Api:
    client: httpx.AsyncClient
    directory: ConfigCache
    engine: AsyncEngine
    settings: Settings

    async def call(self, method: str, url: str, token: str | None = ADMIN, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.client.request(method, url, headers=headers, **kw)
        assert response.status_code != 500, response.text
        return response

    async def mint(
        self, permissions: list[str], gateways: list[str] | None = None, account: str = ACCT
    ) -> str:
        body = {"name": "t", "permissions": permissions, "gateways": gateways or ["*"]}
        response = await self.call("POST", f"/client/v4/accounts/{account}/tokens", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["result"]["value"])


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    url = f"sqlite:///{tmp_path}/aigw.db"
    await upgrade_async(url)
    # A long TTL: the tests below prove that writes invalidate the cache instead of waiting it out.
    settings = Settings(_env_file=None, database_url=url, admin_token=ADMIN, config_cache_ttl_s=60)  # type: ignore[call-arg]
    engine = create_engine(url)
    sessions = session_factory(engine)
    directory = ConfigCache(sessions, settings.config_cache_ttl_s)
    app = FastAPI()
    app.state.settings, app.state.sessions, app.state.config_cache = settings, sessions, directory
    app.include_router(gateways.router)
    app.include_router(tokens.router)

    @app.get("/v1/probe")
    async def probe(n: int) -> dict[str, int]:  # a non-management route, for the fall-through test
        return {"n": n}

    install_management_error_handlers(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as client:
        yield Api(client, directory, engine, settings)
    await engine.dispose()


# ---- gateways ----------------------------------------------------------------------------------------


async def test_gateway_crud_as_admin(api: Api) -> None:
    created = await api.call(
        "POST", GW, json={"id": "gw1", "cache_ttl": 60, "rate_limiting_technique": "sliding"}
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["success"] is True and body["errors"] == [] and body["messages"] == []
    gw = body["result"]
    assert gw["id"] == "gw1" and gw["account_id"] == ACCT
    assert gw["cache_ttl"] == 60 and gw["rate_limiting_technique"] == "sliding"
    assert gw["collect_logs"] is True and gw["authentication"] is False  # the public service's defaults
    assert gw["created_at"].endswith("Z") and datetime.fromisoformat(gw["created_at"])

    got = (await api.call("GET", f"{GW}/gw1")).json()["result"]
    assert got == gw

    updated = await api.call("PUT", f"{GW}/gw1", json={"authentication": True, "retry_backoff": "linear"})
    assert updated.status_code == 200, updated.text
    new = updated.json()["result"]
    assert new["authentication"] is True and new["retry_backoff"] == "linear"
    assert new["cache_ttl"] == 60  # fields not sent are kept
    assert new["modified_at"] >= new["created_at"] == gw["created_at"]

    deleted = await api.call("DELETE", f"{GW}/gw1")
    assert deleted.status_code == 200 and deleted.json()["result"]["id"] == "gw1"
    assert (await api.call("GET", f"{GW}/gw1")).status_code == 404


async def test_gateway_list_pages_and_search(api: Api) -> None:
    for name in ("alpha", "beta", "alphabet", "gamma"):
        assert (await api.call("POST", GW, json={"id": name})).status_code == 200
    page = (await api.call("GET", GW, params={"per_page": 3})).json()
    assert page["result_info"] == {"page": 1, "per_page": 3, "count": 3, "total_count": 4}
    rest = (await api.call("GET", GW, params={"per_page": 3, "page": 2})).json()
    assert rest["result_info"]["count"] == 1
    ids = {g["id"] for g in page["result"]} | {g["id"] for g in rest["result"]}
    assert ids == {"alpha", "beta", "alphabet", "gamma"}
    found = (await api.call("GET", GW, params={"search": "alpha"})).json()
    assert sorted(g["id"] for g in found["result"]) == ["alpha", "alphabet"]
    # LIKE wildcards in the search are literal characters.
    assert (await api.call("GET", GW, params={"search": "%"})).json()["result"] == []
    other = (await api.call("GET", "/client/v4/accounts/other/ai-gateway/gateways")).json()
    assert other["result"] == [] and other["result_info"]["total_count"] == 0


async def test_gateway_url(api: Api) -> None:
    await api.call("POST", GW, json={"id": "gw1"})
    response = await api.call("GET", f"{GW}/gw1/url/openai")
    assert response.json()["result"] == f"http://gw.test/v1/{ACCT}/gw1/openai"
    assert (await api.call("GET", f"{GW}/default/url/workers-ai")).status_code == 200
    assert (await api.call("GET", f"{GW}/nope/url/openai")).status_code == 404
    assert (await api.call("GET", f"{GW}/gw1/url/Not%20A%20Slug")).status_code == 400


async def test_delete_gateway_deletes_its_logs_only(api: Api) -> None:
    await api.call("POST", GW, json={"id": "gw1"})
    stamp = datetime.now(UTC)
    async with session_factory(api.engine)() as session:
        session.add(Log(id="01J00000000000000000000001", account_id=ACCT, gateway_id="gw1", created_at=stamp))
        session.add(Log(id="01J00000000000000000000002", account_id=ACCT, gateway_id="gw2", created_at=stamp))
        await session.commit()
    assert (await api.call("DELETE", f"{GW}/gw1")).status_code == 200
    async with session_factory(api.engine)() as session:
        assert await session.get(Log, "01J00000000000000000000001") is None
        assert await session.get(Log, "01J00000000000000000000002") is not None


async def test_writes_invalidate_the_directory(api: Api) -> None:
    await api.call("POST", GW, json={"id": "gw1"})
    cached = await api.directory.gateway(ACCT, "gw1")
    assert cached is not None and cached.cache_ttl == 0
    await api.call("PUT", f"{GW}/gw1", json={"cache_ttl": 30})
    fresh = await api.directory.gateway(ACCT, "gw1")
    assert fresh is not None and fresh.cache_ttl == 30
    await api.call("DELETE", f"{GW}/gw1")
    assert await api.directory.gateway(ACCT, "gw1") is None


async def test_duplicate_gateway_is_409(api: Api) -> None:
    assert (await api.call("POST", GW, json={"id": "gw1"})).status_code == 200
    again = await api.call("POST", GW, json={"id": "gw1"})
    assert again.status_code == 409
    assert v4_errors(again, 409)[0]["code"] == 1003


# ---- validation and unknown ids ----------------------------------------------------------------------


async def test_validation_errors_name_each_field(api: Api) -> None:
    body = {"id": "bad id!", "rate_limiting_technique": "random", "cache_ttl": -1, "retry_max_attempts": 9}
    response = await api.call("POST", GW, json=body)
    assert response.status_code == 400
    errors = v4_errors(response, 400)
    assert all(e["code"] == 1001 for e in errors)
    fields = {e["message"].split(":", 1)[0] for e in errors}
    assert fields == {"id", "rate_limiting_technique", "cache_ttl", "retry_max_attempts"}


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "", {"content": b"{not json"}),
        ("POST", "", {"content": b"[1, 2]", "headers": {"content-type": "application/json"}}),
        ("POST", "", {"content": b"\xff\xfe garbage", "headers": {"content-type": "text/plain"}}),
        ("POST", "", {"json": {}}),
        ("POST", "", {"json": {"id": "x" * 65}}),
        ("POST", "", {"json": {"id": "ok", "cache_ttl": 10**12}}),
        ("POST", "", {"json": {"id": "ok", "log_management_strategy": "KEEP"}}),
        ("POST", "", {"json": {"id": "ok", "collect_logs": "maybe"}}),
        ("PUT", "/gw1", {"json": {"collect_logs": None}}),
        ("PUT", "/gw1", {"json": {"rate_limiting_technique": None}}),
        ("PUT", "/gw1", {"content": b"null", "headers": {"content-type": "application/json"}}),
        ("GET", "", {"params": {"per_page": 0}}),
        ("GET", "", {"params": {"page": "abc"}}),
        ("GET", "", {"params": {"page": 10**30}}),
    ],
)
async def test_garbage_is_400_never_500(api: Api, method: str, path: str, kwargs: dict[str, Any]) -> None:
    await api.call("POST", GW, json={"id": "gw1"})
    kwargs = dict(kwargs)
    headers = {"Authorization": f"Bearer {ADMIN}", **kwargs.pop("headers", {})}
    response = await api.client.request(method, GW + path, headers=headers, **kwargs)
    assert response.status_code == 400, response.text
    assert v4_errors(response, 400)[0]["code"] == 1001


async def test_unknown_ids_and_routes(api: Api) -> None:
    for method in ("GET", "PUT", "DELETE"):
        response = await api.call(method, f"{GW}/missing", json={})
        assert response.status_code == 404 and v4_errors(response, 404)[0]["code"] == 1002
    missing_token = await api.call("GET", f"{TOK}/01j00000000000000000000000")
    assert missing_token.status_code == 404 and v4_errors(missing_token, 404)[0]["code"] == 1002
    no_route = await api.call("GET", f"/client/v4/accounts/{ACCT}/nothing-here")
    assert no_route.status_code == 404 and v4_errors(no_route, 404)[0]["code"] == 7000
    wrong_method = await api.call("PATCH", GW)
    assert wrong_method.status_code == 405 and v4_errors(wrong_method, 405)[0]["code"] == 7001


async def test_other_paths_keep_fastapis_default_errors(api: Api) -> None:
    response = await api.client.get("/v1/probe", params={"n": "x"})
    assert response.status_code == 422 and "detail" in response.json()
    assert (await api.client.get("/nowhere")).json() == {"detail": "Not Found"}


# ---- tokens ------------------------------------------------------------------------------------------


async def test_token_create_list_get_revoke(api: Api) -> None:
    expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    created = await api.call(
        "POST",
        TOK,
        json={"name": "ci", "permissions": ["read", "run"], "gateways": ["gw1"], "expires_on": expires},
    )
    assert created.status_code == 200, created.text
    token = created.json()["result"]
    assert token["value"].startswith("aigw_") and token["permissions"] == ["run", "read"]
    assert token["gateways"] == ["gw1"] and token["expires_on"].endswith("Z") and token["revoked_at"] is None

    listed = (await api.call("GET", TOK)).json()
    assert [t["id"] for t in listed["result"]] == [token["id"]]
    assert "value" not in listed["result"][0] and token["value"] not in str(listed)
    got = (await api.call("GET", f"{TOK}/{token['id']}")).json()["result"]
    assert "value" not in got and got["name"] == "ci"

    revoked = await api.call("DELETE", f"{TOK}/{token['id']}")
    assert revoked.status_code == 200 and revoked.json()["result"]["revoked_at"] is not None


async def test_token_value_works_until_revoked(api: Api) -> None:
    value = await api.mint(["read"])
    principal = await identify(api.directory, ADMIN, f"Bearer {value}")  # now cached for 60 s
    assert principal.account_id == ACCT and principal.permissions == {"read"}
    assert (await api.call("GET", GW, token=value)).status_code == 200
    await api.call("DELETE", f"{TOK}/{principal.token_id}")
    with pytest.raises(Unauthorized):
        await identify(api.directory, ADMIN, f"Bearer {value}")
    assert (await api.call("GET", GW, token=value)).status_code == 401


async def test_expiring_token_works_until_it_expires(api: Api) -> None:
    expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = await api.call("POST", TOK, json={"permissions": ["read"], "expires_on": expires})
    value, token_id = response.json()["result"]["value"], response.json()["result"]["id"]
    assert (await api.call("GET", GW, token=value)).status_code == 200
    async with session_factory(api.engine)() as session:  # let an hour pass
        row = await session.get(Token, token_id)
        assert row is not None
        row.expires_on = datetime.now(UTC) - timedelta(seconds=1)
        session.add(row)
        await session.commit()
    api.directory.invalidate_token(token_id)
    assert (await api.call("GET", GW, token=value)).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"permissions": []},
        {"permissions": ["admin"]},
        {"permissions": "run"},
        {"gateways": []},
        {"gateways": ["bad id"]},
        {"expires_on": "tomorrow"},
        {"expires_on": "2001-01-01T00:00:00Z"},
        {"name": "n" * 256},
    ],
)
async def test_token_validation(api: Api, body: dict[str, Any]) -> None:
    response = await api.call("POST", TOK, json=body)
    assert response.status_code == 400, response.text
    assert v4_errors(response, 400)[0]["code"] == 1001


async def test_tokens_of_another_account_are_invisible(api: Api) -> None:
    await api.mint(["read"], account="other")
    other_id = (await api.call("GET", "/client/v4/accounts/other/tokens")).json()["result"][0]["id"]
    assert (await api.call("GET", TOK)).json()["result"] == []
    assert (await api.call("GET", f"{TOK}/{other_id}")).status_code == 404
    assert (await api.call("DELETE", f"{TOK}/{other_id}")).status_code == 404


# ---- permission matrix ---------------------------------------------------------------------------


async def test_missing_or_bad_token_is_401(api: Api) -> None:
    for token in (None, "nonsense", "aigw_01j00000000000000000000000_secret", ADMIN + "x"):
        response = await api.call("GET", GW, token=token)
        assert response.status_code == 401
        assert v4_errors(response, 401)[0]["code"] == 10000


async def test_run_only_token_is_403_everywhere(api: Api) -> None:
    run = await api.mint(["run"])
    for method, url, body in [("GET", GW, None), ("POST", GW, {"id": "x"}), ("GET", TOK, None)]:
        response = await api.call(method, url, token=run, json=body)
        assert response.status_code == 403
        assert v4_errors(response, 403)[0]["code"] == 10001


async def test_read_token_reads_but_cannot_write(api: Api) -> None:
    await api.call("POST", GW, json={"id": "gw1"})
    read = await api.mint(["read"])
    assert (await api.call("GET", GW, token=read)).status_code == 200
    assert (await api.call("GET", f"{GW}/gw1", token=read)).status_code == 200
    assert (await api.call("GET", TOK, token=read)).status_code == 200
    assert (await api.call("POST", GW, token=read, json={"id": "gw2"})).status_code == 403
    assert (await api.call("PUT", f"{GW}/gw1", token=read, json={})).status_code == 403
    assert (await api.call("DELETE", f"{GW}/gw1", token=read)).status_code == 403
    assert (await api.call("POST", TOK, token=read, json={"permissions": ["read"]})).status_code == 403


async def test_token_of_another_account_is_403(api: Api) -> None:
    other = await api.mint(["read", "edit"], account="other")
    assert (await api.call("GET", GW, token=other)).status_code == 403
    assert (await api.call("POST", TOK, token=other, json={"permissions": ["read"]})).status_code == 403
    assert (
        await api.call("GET", "/client/v4/accounts/other/ai-gateway/gateways", token=other)
    ).status_code == 200


async def test_gateway_limited_token(api: Api) -> None:
    for name in ("gw1", "gw2"):
        await api.call("POST", GW, json={"id": name})
    limited = await api.mint(["read", "edit"], gateways=["gw1", "gw3"])
    assert (await api.call("GET", f"{GW}/gw1", token=limited)).status_code == 200
    assert (await api.call("GET", f"{GW}/gw2", token=limited)).status_code == 403
    assert (await api.call("PUT", f"{GW}/gw2", token=limited, json={})).status_code == 403
    listed = (await api.call("GET", GW, token=limited)).json()
    assert [g["id"] for g in listed["result"]] == ["gw1"] and listed["result_info"]["total_count"] == 1
    assert (await api.call("POST", GW, token=limited, json={"id": "gw4"})).status_code == 403
    assert (await api.call("POST", GW, token=limited, json={"id": "gw3"})).status_code == 200


async def test_tokens_cannot_mint_or_revoke_beyond_their_own_power(api: Api) -> None:
    limited = await api.mint(["read", "edit"], gateways=["gw1"])

    async def mint(body: dict[str, Any]) -> int:
        return (await api.call("POST", TOK, token=limited, json=body)).status_code

    assert await mint({"permissions": ["run"]}) == 403  # `run` is not among its permissions
    assert await mint({"permissions": ["read"], "gateways": ["*"]}) == 403
    assert await mint({"permissions": ["read"], "gateways": ["gw2"]}) == 403
    assert await mint({"permissions": ["read", "edit"], "gateways": ["gw1"]}) == 200

    wide = await api.call("POST", TOK, json={"permissions": ["read"]})  # minted by the admin
    wide_id = wide.json()["result"]["id"]
    assert (await api.call("DELETE", f"{TOK}/{wide_id}", token=limited)).status_code == 403
    narrow = await api.call("POST", TOK, json={"permissions": ["read"], "gateways": ["gw1"]})
    narrow_id = narrow.json()["result"]["id"]
    assert (await api.call("DELETE", f"{TOK}/{narrow_id}", token=limited)).status_code == 200

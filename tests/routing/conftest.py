"""One gateway server (SQLite) for the dynamic-route tests, with a secret key for stored keys; a
gateway with stored provider keys, a `run` token and an openai SDK on its compat endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudflare
import openai
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import ACCT
from tests.support.management import Mgmt, management_server, mgmt_client


@pytest.fixture(scope="module")
def mgmt(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[Mgmt]:
    base: Path = tmp_path_factory.mktemp("routes")
    with management_server("sqlite", base, fake_upstream.url) as server, mgmt_client(server) as client:
        yield client


@pytest.fixture
def cf(mgmt: Mgmt) -> Iterator[cloudflare.Cloudflare]:
    token = mgmt.new_token(["read", "edit"])
    client = cloudflare.Cloudflare(api_token=token, base_url=f"{mgmt.server.url}/client/v4", max_retries=0)
    yield client
    client.close()


def model(
    element_id: str, provider: str, name: str, fallback: str | None = None, **props: Any
) -> dict[str, Any]:
    outputs: dict[str, Any] = {"success": {"elementId": "end"}}
    if fallback is not None:
        outputs["fallback"] = {"elementId": fallback}
    properties = {"provider": provider, "model": name, "timeout": 30000, "retries": 0, **props}
    return {"id": element_id, "type": "model", "properties": properties, "outputs": outputs}


def start(next_id: str) -> dict[str, Any]:
    return {"id": "start", "type": "start", "outputs": {"next": {"elementId": next_id}}}


END: dict[str, Any] = {"id": "end", "type": "end", "outputs": {}}


def simple(provider: str = "openai", name: str = "gpt-4o-mini") -> list[dict[str, Any]]:
    return [start("m1"), model("m1", provider, name), END]


USER: Any = {"role": "user", "content": "say hello please"}
STORED = "sk-stored-route-key-0123456789"


@pytest.fixture
def gw(mgmt: Mgmt) -> str:
    gateway_id = mgmt.new_gateway()
    for provider in ("openai", "anthropic"):
        body = {"provider_slug": provider, "alias": "default", "secret": f"{STORED}-{provider}"}
        mgmt.ok("POST", mgmt.gw_path(gateway_id, "/provider_configs"), json=body)
    return gateway_id


@pytest.fixture
def token(mgmt: Mgmt) -> str:
    return mgmt.new_token(["run"])


@pytest.fixture
def sdk(mgmt: Mgmt, gw: str, token: str) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(
        base_url=f"{mgmt.server.url}/v1/{ACCT}/{gw}/compat", api_key=token, max_retries=0, timeout=10
    )
    yield client
    client.close()


def new_route(mgmt: Mgmt, gw: str, elements: list[dict[str, Any]], name: str = "r") -> dict[str, Any]:
    result: dict[str, Any] = mgmt.ok(
        "POST", mgmt.gw_path(gw, "/routes"), json={"name": name, "elements": elements}
    )["result"]
    return result


def models_called(upstream: FakeUpstream) -> list[str]:
    called = []
    for request in upstream.requests:
        body = json.loads(request.body)
        called.append(body.get("model", request.path))
    return called

"""The OpenAPI page teaches the gateway: security schemes for both token headers, every `cf-aig-*`
header with its range, the gateway's error body and codes, the compat path, the WebSocket
endpoints; every request example on it runs as written (against the fake provider); and the docs
pages load nothing from another host."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayServer
from tests.support.helpers import create_gateway


@pytest.fixture(scope="module")
def spec(server: GatewayServer) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def _operations(spec: dict[str, Any], prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, operations in spec["paths"].items()
        if path.startswith(prefix)
        for method, operation in operations.items()
    ]


def test_security_schemes(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["gatewayToken"] == {**schemes["gatewayToken"], "type": "apiKey", "in": "header",
                                       "name": "cf-aig-authorization"}  # fmt: skip
    assert schemes["managementToken"]["type"] == "http" and schemes["managementToken"]["scheme"] == "bearer"
    management = _operations(spec, "/client/v4/")
    assert management and all(op["security"] == [{"managementToken": []}] for _, _, op in management)
    gateway = _operations(spec, "/v1/")
    assert all({"gatewayToken": []} in op["security"] for _, _, op in gateway)


def test_gateway_operations_list_the_headers_and_errors(spec: dict[str, Any]) -> None:
    http_ops = [(p, m, op) for p, m, op in _operations(spec, "/v1/") if m == "post"]
    assert {p for p, _, _ in http_ops} == {
        "/v1/{account_id}/{gateway_id}",
        "/v1/{account_id}/{gateway_id}/{provider}/{path}",
        "/v1/{account_id}/{gateway_id}/compat/chat/completions",
    }
    for _, _, operation in http_ops:
        headers = {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "header"}
        assert headers["cf-aig-cache-ttl"] == {"type": "integer", "minimum": 60, "maximum": 2592000}
        assert (
            headers["cf-aig-max-attempts"]["maximum"] == 5
            and headers["cf-aig-retry-delay"]["maximum"] == 5000
        )
        assert len([name for name in headers if name.startswith("cf-aig-")]) == 13
        responses = operation["responses"]
        assert "422" not in responses
        for status, code in (("401", 2009), ("429", 2003), ("502", 2005), ("504", 2012), ("413", 2011)):
            content = responses[status]["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/GatewayErrorBody"}
            assert (
                content["example"]["error"][0]["code"] == code
                and str(code) in responses[status]["description"]
            )
        assert "2010" in responses["400"]["description"] and "2001" in responses["400"]["description"]
        assert "cf-aig-log-id" in responses["200"]["headers"]


def test_websocket_endpoints_are_described(spec: dict[str, Any]) -> None:
    session = spec["paths"]["/v1/{account_id}/{gateway_id}"]["get"]
    assert "universal.create" in session["description"] and "universal.stream" in session["description"]
    assert "always needs a gateway token" in session["description"]
    realtime = spec["paths"]["/v1/{account_id}/{gateway_id}/{provider}"]["get"]
    assert "/openai/realtime" in realtime["description"]


def test_every_ref_resolves(spec: dict[str, Any]) -> None:
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', httpx.Response(200, json=spec).text))
    refs |= set(re.findall(r'"\$ref":"#/components/schemas/([^"]+)"', httpx.Response(200, json=spec).text))
    assert refs and refs <= set(spec["components"]["schemas"])
    assert "$defs" not in spec["components"]["schemas"]["GatewayErrorBody"]


def test_every_request_example_runs_as_written(
    server: GatewayServer, spec: dict[str, Any], upstream: Any
) -> None:
    create_gateway(server.url, gateway_id="gw")
    ran = 0
    for path, method, operation in _operations(spec, "/v1/"):
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        if "example" not in body:
            continue
        url = path
        for parameter in operation["parameters"]:
            if parameter["in"] == "path":
                url = url.replace("{" + parameter["name"] + "}", parameter["example"])
        response = httpx.request(method, server.url + url, json=body["example"])
        assert response.status_code == 200, (path, response.text)
        ran += 1
    assert ran == 3  # universal, pass-through, compat
    assert upstream.count() == 3


def test_docs_pages_load_nothing_from_other_hosts(server: GatewayServer) -> None:
    for page in ("/docs", "/redoc"):
        html = httpx.get(server.url + page).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources and all(src.startswith("/") for src in sources), sources
        for src in sources:
            if src.endswith(".js"):
                script = httpx.get(server.url + src)
                assert script.status_code == 200
                assert "cdn.redoc.ly" not in script.text and "fonts.googleapis" not in script.text

"""The `cloudflare` SDK drives every dynamic-route management call against a running gateway
(routing.md §1-§4): create (auto-deployed), list, get, rename, versions, deployments, rollback,
delete; and every malformed input gets its documented error, one 1001 entry per problem."""

from __future__ import annotations

import json
from typing import Any

import cloudflare
import pytest

from tests.routing.conftest import END, model, simple, start
from tests.support.helpers import ACCT
from tests.support.management import Mgmt


def routes_path(mgmt: Mgmt, gw: str, rest: str = "") -> str:
    return mgmt.gw_path(gw, f"/routes{rest}")


def test_sdk_drives_routes_versions_deployments_and_rollback(cf: cloudflare.Cloudflare, mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    dr = cf.ai_gateway.dynamic_routing
    created = dr.create(gw, account_id=ACCT, name="support", elements=simple())  # type: ignore[arg-type]
    assert created.name == "support" and created.gateway_id == gw
    assert created.version.active == "true" and created.deployment.version_id == created.version.version_id
    v1 = created.version.version_id
    assert json.loads(created.version.data)[1]["properties"]["model"] == "gpt-4o-mini"
    assert created.elements[1].outputs.fallback.element_id == "end"  # type: ignore[union-attr]

    listed = dr.list(gw, account_id=ACCT)
    assert [r.name for r in listed.data.routes] == ["support"]
    assert listed.data.order_by == "created_at" and listed.data.order_by_direction == "desc"

    got = dr.get(created.id, account_id=ACCT, gateway_id=gw)
    assert got.id == created.id and got.version.version_id == v1

    renamed = dr.update(created.id, account_id=ACCT, gateway_id=gw, name="helpdesk")
    assert renamed.route.name == "helpdesk"

    new = dr.create_version(
        created.id,
        account_id=ACCT,
        gateway_id=gw,
        elements=simple("anthropic", "claude-3-5-haiku-latest"),  # type: ignore[arg-type]
    )
    v2 = new.model_extra["version_id"] if new.model_extra else None
    assert v2 and v2 != v1
    assert dr.get(created.id, account_id=ACCT, gateway_id=gw).version.version_id == v1  # traffic unchanged
    versions = dr.list_versions(created.id, account_id=ACCT, gateway_id=gw).data.versions
    assert [(v.version_id, v.active) for v in versions] == [(v2, "false"), (v1, "true")]

    detail = dr.get_version(v2, account_id=ACCT, gateway_id=gw, id=created.id)
    assert detail.active == "false" and detail.elements[1].properties.provider == "anthropic"  # type: ignore[union-attr]

    deployed = dr.create_deployment(created.id, account_id=ACCT, gateway_id=gw, version_id=v2)
    assert deployed.elements[1].properties.provider == "anthropic"  # type: ignore[union-attr]
    assert dr.get(created.id, account_id=ACCT, gateway_id=gw).version.version_id == v2
    dr.create_deployment(created.id, account_id=ACCT, gateway_id=gw, version_id=v1)  # rollback
    assert dr.get(created.id, account_id=ACCT, gateway_id=gw).version.version_id == v1
    history = dr.list_deployments(created.id, account_id=ACCT, gateway_id=gw).data.deployments
    assert [d.version_id for d in history] == [v1, v2, v1]

    deleted = dr.delete(created.id, account_id=ACCT, gateway_id=gw)
    assert deleted.id == created.id
    with pytest.raises(cloudflare.NotFoundError):
        dr.get(created.id, account_id=ACCT, gateway_id=gw)


def _errors(mgmt: Mgmt, method: str, path: str, body: Any, status: int = 400) -> list[dict[str, Any]]:
    response = mgmt.call(method, path, json=body)
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["success"] is False
    errors: list[dict[str, Any]] = payload["errors"]
    return errors


def test_one_error_per_problem_with_its_path(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    elements = [
        start("m9"),  # unknown target
        model("m1", "openai", "gpt-4o-mini", timeout=0),  # bad timeout, unreachable
        {"id": "split", "type": "percentage", "outputs": {"abc": {"elementId": "end"}}},  # bad key
        {"id": "start2", "type": "start", "outputs": {"next": {"elementId": "end"}}},
        END,
    ]
    errors = _errors(mgmt, "POST", routes_path(mgmt, gw), {"name": "bad", "elements": elements})
    assert all(e["code"] == 1001 for e in errors)
    by_path = {tuple(e["path"]): e["message"] for e in errors}
    assert by_path[("body", "elements", 0, "outputs", "next", "elementId")] == (
        "elements.0.outputs.next.elementId: unknown element 'm9'"
    )
    assert ("body", "elements", 1, "properties", "timeout") in by_path
    assert ("body", "elements", 2, "outputs", "abc") in by_path
    assert by_path[("body", "elements", 3)].endswith("more than one start element")
    assert "unreachable element 'm1'" in by_path[("body", "elements", 1)]


@pytest.mark.parametrize(
    ("elements", "path", "fragment"),
    [
        ([model("m1", "openai", "x"), END], ["body", "elements"], "missing start element"),
        (
            [
                start("a"),
                {
                    "id": "a",
                    "type": "conditional",
                    "outputs": {"true": {"elementId": "b"}, "false": {"elementId": "end"}},
                },
                {
                    "id": "b",
                    "type": "conditional",
                    "outputs": {"true": {"elementId": "a"}, "false": {"elementId": "end"}},
                },
                END,
            ],
            ["body", "elements", 2],
            "cycle: a → b → a",
        ),
        (
            [start("m1"), model("m1", "nope", "x"), END],
            ["body", "elements", 1, "properties", "provider"],
            "unknown provider",
        ),
        (
            [
                start("c"),
                {
                    "id": "c",
                    "type": "conditional",
                    "properties": {"conditions": {"user.x": 1}},
                    "outputs": {"true": {"elementId": "end"}, "false": {"elementId": "end"}},
                },
                END,
            ],
            ["body", "elements", 1, "properties", "conditions"],
            "unknown path root",
        ),
        (
            [start("p"), {"id": "p", "type": "percentage", "outputs": {"40%": {"elementId": "end"}}}, END],
            ["body", "elements", 1, "outputs"],
            "'else' output is required",
        ),
        (
            [start("m1"), {**model("m1", "openai", "x"), "outputs": {"success": {"elementId": "m1"}}}, END],
            ["body", "elements", 1, "outputs", "success", "elementId"],
            "end element",
        ),
        ([], ["body", "elements"], "non-empty"),
        ("nope", ["body", "elements"], "non-empty"),
    ],
)
def test_graph_errors(mgmt: Mgmt, elements: Any, path: list[Any], fragment: str) -> None:
    gw = mgmt.new_gateway()
    errors = _errors(mgmt, "POST", routes_path(mgmt, gw), {"name": "r", "elements": elements})
    assert any(e["path"] == path and fragment in e["message"] for e in errors), errors


def test_malformed_requests_get_their_documented_codes(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    base = routes_path(mgmt, gw)
    assert _errors(mgmt, "POST", base, {"elements": simple()})[0]["path"] == ["body", "name"]
    assert _errors(mgmt, "POST", base, {"name": "a b", "elements": simple()})[0]["code"] == 1001
    response = mgmt.call("POST", base, content=b"{not json")
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == 1001
    route = mgmt.ok("POST", base, json={"name": "r1", "elements": simple()})["result"]
    assert _errors(mgmt, "POST", base, {"name": "r1", "elements": simple()}, 409)[0]["code"] == 1003
    rid = route["id"]
    assert _errors(mgmt, "PATCH", f"{base}/{rid}", {"name": "r2", "elements": simple()})[0]["path"] == [
        "body",
        "elements",
    ]
    assert _errors(mgmt, "GET", f"{base}/nope", None, 404)[0]["code"] == 1002
    assert _errors(mgmt, "GET", f"{base}/{rid}/versions/nope", None, 404)[0]["code"] == 1002
    other = mgmt.ok("POST", base, json={"name": "other", "elements": simple()})["result"]
    foreign = other["version"]["version_id"]
    assert _errors(mgmt, "POST", f"{base}/{rid}/deployments", {"version_id": foreign}, 404)[0]["code"] == 1002
    assert _errors(mgmt, "POST", f"{base}/{rid}/deployments", {}, 400)[0]["path"] == ["body", "version_id"]
    unknown_gw = routes_path(mgmt, "no-such-gateway")
    assert _errors(mgmt, "GET", unknown_gw, None, 404)[0]["code"] == 1002
    assert mgmt.call("GET", f"{base}?per_page=101").status_code == 400
    # The server keeps serving, and the aliases come back in the SDK's spelling.
    aliased = [
        start("rl"),
        {
            "id": "rl",
            "type": "rate_limit",
            "properties": {"limitType": "count", "key": "", "limit": 5, "interval": 60},
            "outputs": {"success": {"elementId": "end"}},
        },
        END,
    ]
    made = mgmt.ok("POST", base, json={"name": "aliased", "elements": aliased})["result"]
    rate = made["elements"][1]
    assert rate["type"] == "rate" and rate["properties"]["window"] == 60
    assert rate["properties"]["technique"] == "sliding" and rate["outputs"]["fallback"] == {
        "elementId": "end"
    }


def test_permissions_and_gateway_delete(mgmt: Mgmt) -> None:
    gw = mgmt.new_gateway()
    base = routes_path(mgmt, gw)
    run_only = mgmt.new_token(["run"])
    assert mgmt.call("GET", base, token=run_only).status_code == 403
    reader = mgmt.new_token(["read"])
    assert mgmt.call("GET", base, token=reader).status_code == 200
    assert mgmt.call("POST", base, token=reader, json={"name": "x", "elements": simple()}).status_code == 403
    mgmt.ok("POST", base, json={"name": "kept", "elements": simple()})
    mgmt.ok("DELETE", mgmt.gw_path(gw))
    mgmt.new_gateway(id=gw)  # same id again: the old routes went with the old gateway
    assert mgmt.ok("GET", base)["data"]["routes"] == []

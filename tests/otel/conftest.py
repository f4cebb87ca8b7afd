"""The OTel tests' fake OTLP collector (tests/support/fake_otlp.py) and a gateway that may export
to it (loopback, which only the development setting lets a tenant use), with a server key so that
exporter secrets can be stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import GatewayServer
from tests.support.fake_otlp import FakeCollector, start_collector
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import Api, api_client, running_gateway

PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
EXPORTER_SECRET = "Bearer otel-collector-secret-42"
SECRET_KEY = "otel-tests-secret-key-0123456789"
CLIENT = 3  # SpanKind CLIENT in OTLP's enum


@pytest.fixture(scope="module")
def collector() -> Iterator[FakeCollector]:
    collector, server = start_collector()
    collector.url = server.url  # type: ignore[attr-defined]
    try:
        yield collector
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[GatewayServer]:
    with running_gateway(
        tmp_path_factory.mktemp("otel"), fake_upstream.url, secret_key=SECRET_KEY,
        allow_private_destinations=True, otel_flush_interval_s=0.05, otel_export_timeout_s=2.0,
    ) as gateway:  # fmt: skip
        yield gateway


@pytest.fixture
def api(server: GatewayServer, upstream: FakeUpstream) -> Iterator[Api]:
    with api_client(server) as client:
        yield client


def exporter(collector: FakeCollector, content_type: str = "json", **extra: Any) -> dict[str, Any]:
    url = f"{collector.url}/v1/traces"  # type: ignore[attr-defined]
    return {"url": url, "headers": {"x-team": "blue"}, "content_type": content_type, **extra}

"""One gateway per REST test module, able to store provider keys (tests keep apart by gateway id)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import GatewayServer
from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import running_gateway

SECRET_KEY = "rest-tests-secret-key-0123456789abcdef"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[GatewayServer]:
    with running_gateway(
        tmp_path_factory.mktemp("rest"), fake_upstream.url, secret_key=SECRET_KEY
    ) as gateway:
        yield gateway

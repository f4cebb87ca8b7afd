"""Shared fixtures: the fake provider server, a real gateway on a loopback port, database URLs.

The gateway modules (`app.core.settings`, `app.db.migrate`, `app.main`) are imported inside the fixtures
that need them, so tests of the harness itself run whatever state the application is in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.fake_upstream import FakeUpstream, upstream_overrides_for
from tests.support.server_thread import ServerThread

if TYPE_CHECKING:
    from app.core.settings import Settings

__all__ = ["ADMIN_TOKEN", "GatewayServer", "ServerThread"]

ADMIN_TOKEN = "test-admin-token"


# ---- fake upstream ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    """One fake provider server for the whole session. Prefer `upstream`, which starts clean."""
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def upstream(fake_upstream: FakeUpstream) -> FakeUpstream:
    """The session's fake provider server, with recorded requests and fail counters reset."""
    fake_upstream.reset()
    return fake_upstream


# ---- gateway ---------------------------------------------------------------------------------------


@dataclass
class GatewayServer:
    """A gateway app served by uvicorn on 127.0.0.1."""

    url: str  # http://127.0.0.1:PORT
    settings: Settings
    app: Any
    server: ServerThread


@pytest.fixture
def gateway_settings(tmp_path: Path, upstream: FakeUpstream) -> Settings:
    """Settings for a gateway on a fresh SQLite file, every provider pointed at the fake upstream."""
    from app.core.settings import Settings

    return Settings(
        _env_file=None,  # type: ignore[call-arg]  # a developer's .env must not leak into tests
        database_url=f"sqlite:///{tmp_path}/aigw.db",
        admin_token=ADMIN_TOKEN,
        redis_url=None,
        log_flush_interval_s=0.05,
        upstream_overrides=upstream_overrides_for(upstream.url),
    )


@pytest.fixture
def gateway_factory() -> Iterator[Callable[[Settings], GatewayServer]]:
    """Start gateways from any Settings (migrated first); all are stopped at teardown.

    For tests needing several gateways, a PostgreSQL database, or a restart on the same database.
    """
    started: list[ServerThread] = []

    def start(settings: Settings, *, migrate: bool = True) -> GatewayServer:
        from app.main import create_app

        if migrate:
            from app.db.migrate import upgrade

            upgrade(settings.database_url)
        app = create_app(settings)
        server = ServerThread(app, lifespan="on", name="gateway")
        server.start()
        started.append(server)
        return GatewayServer(url=server.url, settings=settings, app=app, server=server)

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def gateway(
    gateway_settings: Settings, gateway_factory: Callable[[Settings], GatewayServer]
) -> GatewayServer:
    """A running gateway (SQLite in tmp_path, providers → fake upstream). `.url`, `.settings`, `.app`."""
    return gateway_factory(gateway_settings)


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


# ---- optional external services --------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("AIGW_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("AIGW_TEST_POSTGRES_URL not set: set it to run PostgreSQL tests")
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("AIGW_TEST_REDIS_URL")
    if not url:
        pytest.skip("AIGW_TEST_REDIS_URL not set: set it to run Redis tests")
    return url


# ---- one gateway per test module ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream) -> Iterator[GatewayServer]:
    """A gateway with default settings shared by one test module (tests keep apart by using their
    own gateway ids); a module that needs other settings defines its own `server`."""
    from tests.support.helpers import running_gateway

    with running_gateway(tmp_path_factory.mktemp("gateway"), fake_upstream.url) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def module_api(server: GatewayServer) -> Iterator[Any]:
    from tests.support.helpers import api_client

    with api_client(server) as client:
        yield client


@pytest.fixture
def api(module_api: Any, upstream: FakeUpstream) -> Any:
    """The module's management client, with the fake upstream reset for this test."""
    return module_api

"""`aigw serve --workers 2`: `/metrics` sums every worker (prometheus_client's multi-process mode),
whichever worker answers the scrape; a worker that dies keeps its counts but leaves the live
gauges; the metric files' directory is removed when the server stops."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.conftest import ADMIN_TOKEN
from tests.core.test_metrics import metric
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import ServerProcess

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "count me"}]}


@pytest.fixture
def workers(
    redis_url: str, fake_upstream: FakeUpstream, tmp_path: Path
) -> Iterator[tuple[ServerProcess, Path]]:
    """Two workers; TMPDIR under tmp_path, so the server's metrics directory can be found."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {
        "AIGW_DATABASE_URL": f"sqlite:///{tmp_path}/aigw.db",
        "AIGW_REDIS_URL": redis_url,
        "AIGW_ADMIN_TOKEN": ADMIN_TOKEN,
        "AIGW_UPSTREAM_OPENAI": f"{fake_upstream.url}/v1",
        "TMPDIR": str(tmp),
    }
    with ServerProcess(env, "--workers", "2", log_path=tmp_path / "server.log") as server:
        yield server, tmp


def metrics_dir(tmp: Path) -> Path:
    (found,) = tmp.glob("aigw-metrics-*")
    return found


def requests_by_worker(directory: Path) -> dict[int, float]:
    """The requests counter of each worker, read from its own file."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.removeprefix("counter_"))
        total = 0.0
        for family in MultiProcessCollector.merge([str(path)]):
            if family.name == "aigw_requests":
                total += sum(s.value for s in family.samples if s.name == "aigw_requests_total")
        counts[pid] = total
    return counts


def scrape(server: ServerProcess) -> str:
    with httpx.Client(timeout=10) as client:  # a new connection: any worker may answer
        response = client.get(f"{server.url}/metrics")
    assert response.status_code == 200
    return response.text


def test_metrics_sum_every_worker(workers: tuple[ServerProcess, Path]) -> None:
    server, tmp = workers
    directory = metrics_dir(tmp)
    account = "acct" + uuid.uuid4().hex[:10]  # Redis is shared: keep apart from other tests
    created = httpx.post(
        f"{server.url}/client/v4/accounts/{account}/ai-gateway/gateways", json={"id": "gw"}, headers=ADMIN
    )
    assert created.status_code == 200, created.text
    url = f"{server.url}/v1/{account}/gw/openai/chat/completions"

    def one(_: int) -> int:  # a new connection each: the kernel spreads them over both workers
        with httpx.Client(timeout=10) as client:
            return client.post(url, json=CHAT).status_code

    sent = 0
    with ThreadPoolExecutor(8) as pool:
        for _ in range(10):  # until both workers have served some (almost always the first batch)
            statuses = list(pool.map(one, range(16)))
            assert statuses == [200] * 16
            sent += 16
            if sum(count > 0 for count in requests_by_worker(directory).values()) >= 2:
                break
    by_worker = requests_by_worker(directory)
    assert sum(count > 0 for count in by_worker.values()) == 2, by_worker
    assert sum(by_worker.values()) == sent

    labels = {"gateway": f"{account}/gw", "provider": "openai", "status": "200"}
    for _ in range(10):
        text = scrape(server)
        assert metric(text, "aigw_requests_total", **labels) == sent
        assert metric(text, "aigw_gateway_added_latency_seconds_count") >= sent
        assert metric(text, "aigw_in_flight_requests") == 0  # summed, not one series per worker
        assert metric(text, "aigw_open_websockets") == 0
        assert metric(text, "aigw_logs_dropped") == 0
        assert "aigw_log_queue_depth " in text

    # A worker killed outright: the supervisor replaces it and marks it dead; its requests still count.
    victim = next(iter(by_worker))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while (directory / f"gauge_livesum_{victim}.db").exists() or len(
        list(directory.glob("gauge_livesum_*"))
    ) < 2:
        assert time.monotonic() < deadline, sorted(p.name for p in directory.iterdir())
        time.sleep(0.1)
    server.wait_ready()
    for _ in range(5):
        text = scrape(server)
        assert metric(text, "aigw_requests_total", **labels) == sent
        assert metric(text, "aigw_in_flight_requests") == 0

    assert server.terminate() == 0, server.output()
    assert not directory.exists()  # removed at exit

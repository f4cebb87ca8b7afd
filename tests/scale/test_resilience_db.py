"""Database down (issue 5, item 5): log rows are buffered up to a bound, retried with backoff,
written once the database is back, and counted as dropped (metric `aigw_logs_dropped`, an error
log line) beyond the bound; requests never wait for the database.

The outage is real: the gateway reaches PostgreSQL through a loopback TCP proxy (tests/support/backends.py)
that is stopped (connections reset, new ones refused) or frozen (a partition: nothing answers)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.ids import new_log_id
from app.db.migrate import upgrade
from app.db.session import create_engine
from app.logs.record import LogRecord
from app.logs.writer import LogSink
from tests.conftest import ADMIN_TOKEN, GatewayServer
from tests.support.backends import LogReader, TcpProxy, fresh_postgres, metric, port_of, with_port

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "say hello please"}]}
STREAM = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
PATH = "/v1/acct/gw/openai/chat/completions"


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    with fresh_postgres(postgres_url) as url:
        upgrade(url)
        yield url


@pytest.fixture
def proxy(pg_url: str) -> Iterator[TcpProxy]:
    with TcpProxy(port_of(pg_url)) as relay:
        yield relay


@pytest.fixture
def proxied_gateway(
    pg_url: str, proxy: TcpProxy, gateway_settings: Any, gateway_factory: Callable[..., GatewayServer]
) -> Callable[..., GatewayServer]:
    """A gateway whose database is PostgreSQL behind `proxy`; config lookups trusted 0.2 s only, so
    reloads happen during the outage too."""

    def start(**overrides: Any) -> GatewayServer:
        settings = gateway_settings.model_copy(
            update={"database_url": with_port(pg_url, proxy.port), "config_cache_ttl_s": 0.2, **overrides}
        )
        server = gateway_factory(settings, migrate=False)
        response = httpx.post(
            f"{server.url}/client/v4/accounts/acct/ai-gateway/gateways", json={"id": "gw"}, headers=ADMIN
        )
        assert response.status_code == 200, response.text
        return server

    return start


def timed_requests(server: GatewayServer, count: int, tag: str) -> tuple[list[str], float]:
    """`count` requests (every third streamed); their log ids and the slowest one's seconds."""
    ids, slowest = [], 0.0
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for index in range(count):
            body = STREAM if index % 3 == 2 else CHAT
            started = time.monotonic()
            response = client.post(PATH, json=body, headers={"cf-aig-metadata": f'{{"tag":"{tag}"}}'})
            slowest = max(slowest, time.monotonic() - started)
            assert response.status_code == 200, response.text
            if body is not CHAT:
                assert response.text.rstrip().endswith("data: [DONE]")
            ids.append(response.headers["cf-aig-log-id"])
    return ids, slowest


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def stored(reader: LogReader, ids: list[str]) -> set[str]:
    found = reader.query("SELECT id FROM logs")
    return {row["id"] for row in found} & set(ids)


def test_postgres_down_requests_stay_fast_and_rows_arrive_after(
    proxied_gateway: Callable[..., GatewayServer],
    proxy: TcpProxy,
    pg_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="aigw")
    server = proxied_gateway()
    reader = LogReader(pg_url)
    before, _ = timed_requests(server, 3, "before")
    wait_for(lambda: len(stored(reader, before)) == 3, 10, "rows written before the outage")

    proxy.stop()
    during, slowest = timed_requests(server, 24, "during")
    assert slowest < 0.5, f"a request waited {slowest:.2f} s for the database"
    assert metric(server.url, "aigw_log_queue_depth") > 0
    assert stored(reader, during) == set()
    # The writer notices on its next flush (every 0.2 s), which may come after the last request.
    wait_for(
        lambda: any("log database unavailable" in r.getMessage() for r in caplog.records),
        5,
        "the writer to report the database unavailable",
    )

    proxy.start()
    wait_for(lambda: len(stored(reader, during)) == 24, 15, "buffered rows written after the outage")
    assert metric(server.url, "aigw_logs_dropped") == 0
    assert metric(server.url, "aigw_log_queue_depth") == 0
    assert server.app.state.log_sink.retries > 0
    rows = reader.rows("id = :id", {"id": during[2]})
    assert rows[0]["success"] and rows[0]["tokens_in"] == 3 and rows[0]["tokens_out"] == 3


def test_postgres_partition_does_not_stall_requests(
    proxied_gateway: Callable[..., GatewayServer], proxy: TcpProxy, pg_url: str
) -> None:
    """A partition answers nothing (no refusal): the config reload is waited for at most 0.5 s
    once per TTL, the log writer's insert simply hangs until the network heals."""
    server = proxied_gateway()
    reader = LogReader(pg_url)
    timed_requests(server, 2, "before")
    time.sleep(0.3)  # the config entries expire: the next request starts a reload that hangs
    proxy.freeze()
    try:
        during, slowest = timed_requests(server, 12, "during")
    finally:
        proxy.thaw()
    assert slowest < 1.0, f"a request waited {slowest:.2f} s during the partition"
    wait_for(lambda: len(stored(reader, during)) == 12, 15, "rows written after the partition")


def test_postgres_down_past_the_bound_counts_drops(
    proxied_gateway: Callable[..., GatewayServer],
    proxy: TcpProxy,
    pg_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="aigw.logs")
    server = proxied_gateway(log_queue_max=10)
    reader = LogReader(pg_url)
    timed_requests(server, 1, "before")  # this process has read the gateway's config once
    wait_for(lambda: metric(server.url, "aigw_log_queue_depth") == 0, 10, "the first row")
    proxy.stop()
    during, slowest = timed_requests(server, 30, "during")
    assert slowest < 0.5
    dropped = metric(server.url, "aigw_logs_dropped")
    # At most the bound plus the batch in hand is kept; the rest is dropped, never blocked on.
    assert 30 - 10 - server.settings.log_batch_size <= dropped <= 30 - 10
    assert metric(server.url, "aigw_log_queue_depth") == 30 - dropped
    assert any("dropped" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)

    proxy.start()
    wait_for(lambda: metric(server.url, "aigw_log_queue_depth") == 0, 15, "the buffer to drain")
    assert len(stored(reader, during)) == 30 - dropped
    assert metric(server.url, "aigw_logs_dropped") == dropped


# ---- the writer on its own ---------------------------------------------------------------------------


def record(**fields: Any) -> LogRecord:
    values: dict[str, Any] = {
        "id": new_log_id(),
        "account_id": "acct",
        "gateway_id": "gw",
        "provider": "openai",
        "path": "chat/completions",
        "request_type": "provider",
        "step": 0,
        "event_id": None,
        "connection_id": None,
        "user_agent": None,
        "authenticated": False,
        "metadata": None,
        "custom_cost": None,
        "model_in_path": False,
        "keep_payload": True,
        "body_limit": 32 * 1024,
    }
    values.update(fields)
    item = LogRecord(**values)
    item.finish(200, True)
    return item


async def wait_async(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_bad_row_is_dropped_alone_and_hostile_strings_are_stored(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """One row PostgreSQL refuses (an int32 overflow from a hostile upstream's usage) must not
    take its batch with it; NUL characters and over-long strings are made storable."""
    engine = create_engine(pg_url)
    sink = LogSink(engine, batch_size=100, interval_s=0.05, max_queue=100)
    sink.start()
    try:
        good = [record(event_id=f"ok-{i}") for i in range(4)]
        bad = record(event_id="bad")
        bad.tokens_in, bad.usage_known = 2**40, True
        nul = record(event_id="nul\x00id", request_content_type="x" * 300, model_override="m\x00")
        for item in [*good[:2], bad, nul, *good[2:]]:
            sink.put(item)
        await asyncio.wait_for(sink.flush(), 10)
    finally:
        await sink.stop()
        await engine.dispose()
    reader = LogReader(pg_url)
    rows = await asyncio.to_thread(reader.rows)
    assert {row["id"] for row in rows} == {item.id for item in [*good, nul]}
    assert sink.dropped == 1 and sink.written == 5
    stored_nul = next(row for row in rows if row["id"] == nul.id)
    assert stored_nul["event_id"] == "nul\ufffdid" and len(stored_nul["request_content_type"]) == 255
    assert any(bad.id in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


async def test_buffer_is_bounded_in_bytes_and_retried_until_the_schema_exists(tmp_path: Path) -> None:
    """An unusable database (here: tables not created yet, 'no such table') is retried with
    backoff; the buffer holds at most `max_bytes` of records, the rest is counted as dropped."""
    url = f"sqlite:///{tmp_path}/late.db"
    engine = create_engine(url)
    sink = LogSink(engine, batch_size=100, interval_s=0.01, max_queue=1000, max_bytes=40_000, retry_max_s=0.2)
    sink.start()
    try:
        records = [record(request_body=b"x" * 9000) for _ in range(10)]
        for item in records:
            sink.put(item)
        assert sink.buffered_bytes <= 40_000
        kept = 10 - sink.dropped
        assert sink.dropped > 0 and kept == sink.depth
        await wait_async(lambda: sink.retries >= 2)
        await asyncio.to_thread(upgrade, url)
        await asyncio.wait_for(sink.flush(), 10)
        assert sink.written == kept and sink.buffered_bytes == 0 and sink.depth == 0
    finally:
        await sink.stop()
        await engine.dispose()
    rows = await asyncio.to_thread(LogReader(url).rows)
    assert [row["id"] for row in rows] == [item.id for item in records[:kept]]


async def test_stop_counts_what_the_database_never_took(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/never.db")  # never migrated
    sink = LogSink(engine, batch_size=2, interval_s=0.01, max_queue=100, retry_max_s=0.1)
    sink.start()
    for _ in range(5):
        sink.put(record())
    await wait_async(lambda: sink.retries >= 1)
    started = time.monotonic()
    await sink.stop(timeout_s=0.3)
    await engine.dispose()
    assert time.monotonic() - started < 2
    assert sink.dropped == 5 and sink.depth == 0
    assert any("shutdown" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_gateway_never_read_during_outage_is_503_2014(
    proxied_gateway: Callable[..., GatewayServer], proxy: TcpProxy
) -> None:
    server = proxied_gateway()
    assert httpx.post(server.url + PATH, json=CHAT).status_code == 200  # now cached in process
    proxy.stop()
    with httpx.Client(base_url=server.url, timeout=15) as client:
        unknown = client.post("/v1/acct/never-read/openai/chat/completions", json=CHAT)
        known = client.post(PATH, json=CHAT)  # read before the outage: served from the cache
    assert unknown.status_code == 503, unknown.text
    assert unknown.json()["error"][0]["code"] == 2014
    assert known.status_code == 200

"""Logs API on a large gateway: 1,000,000 log rows in one gateway, generated straight into the
database (bulk insert: sqlite3 executemany in one transaction, or PostgreSQL COPY), then timed
through the real management API (the app with its lifespan, called in process over ASGI):

- the newest page                      GET …/logs                                  target ≤ 50 ms
- a filtered page                      provider + success + a metadata value       target ≤ 200 ms
- one log                              GET …/logs/{id}                             target ≤ 50 ms
- analytics over a day                 GET …/analytics (hourly, and by provider)   target ≤ 1 s

Rows span 7 days by default (`--days`; ≈143k a day), four providers, 95 % successes, 10 % cache
hits, and two metadata entries each (`user`: one of 1000 users, `env`). Prints median and p95 per query and the query
plans of the list queries.

    .venv/bin/python bench/bench_logs.py                                   # SQLite, temp file
    .venv/bin/python bench/bench_logs.py --database-url postgresql://postgres@127.0.0.1:5432/bench
    AIGW_BENCH_DATABASE_URL=postgresql://… .venv/bin/python bench/bench_logs.py --rows 200000

A PostgreSQL database is dropped and created again (its server must allow CREATE DATABASE);
`--reuse` keeps existing rows of a previous run instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url
from ulid import ULID

from app.core.settings import Settings
from app.db.migrate import upgrade
from app.db.session import is_sqlite
from app.main import create_app

ACCOUNT, GATEWAY, ADMIN = "bench", "big", "bench-admin"
PROVIDERS = [
    ("openai", ["gpt-4o-mini", "gpt-4o"], 0.50),
    ("anthropic", ["claude-3-5-haiku-latest", "claude-sonnet-4"], 0.20),
    ("workers-ai", ["@cf/meta/llama-3.1-8b-instruct"], 0.15),
    ("google-ai-studio", ["gemini-2.0-flash"], 0.15),
]
USERS = 1000
REQUEST = b'{"model":"%s","messages":[{"role":"user","content":"Summarise the quarterly report please"}]}'
RESPONSE = (
    b'{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"Here is the summary you asked for."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,'
    b'"completion_tokens":9}}'
)
LOG_COLUMNS = (
    "id", "account_id", "gateway_id", "created_at", "provider", "model", "path", "request_type", "step",
    "event_id", "status_code", "success", "cached", "attempts", "duration_ms", "ttfb_ms", "tokens_in",
    "tokens_out", "cost", "custom_cost", "metadata", "request_content_type", "response_content_type",
    "request_size", "response_size", "request_body", "request_body_complete", "response_body",
    "response_body_complete", "user_agent", "authenticated",
)  # fmt: skip


def generate(
    count: int, end: datetime, days: int
) -> Iterator[tuple[tuple[Any, ...], list[tuple[str, str, str]]]]:
    """(log row, its metadata entries) in time order, deterministic."""
    rng = random.Random(42)
    weights = [w for _, _, w in PROVIDERS]
    start = end - timedelta(days=days)
    step = (end - start) / count
    for i in range(count):
        created = start + step * i
        log_id = str(ULID.from_datetime(created))
        provider, models, _ = rng.choices(PROVIDERS, weights)[0]
        model = rng.choice(models)
        success = rng.random() < 0.95
        cached = success and rng.random() < 0.10
        tokens_in, tokens_out = (rng.randint(5, 2000), rng.randint(5, 800)) if success else (None, None)
        cost = 0.0 if cached else ((tokens_in or 0) * 1.5e-7 + (tokens_out or 0) * 6e-7 if success else None)
        duration = int(rng.lognormvariate(6.0, 0.8)) if not cached else rng.randint(1, 5)
        user, env = f"u{rng.randrange(USERS)}", "prod" if rng.random() < 0.8 else "dev"
        metadata = json.dumps({"user": user, "env": env})
        row = (
            log_id, ACCOUNT, GATEWAY, created, provider, model, "chat/completions", "provider", 0, log_id,
            200 if success else 500, success, cached, 1, duration, duration // 2, tokens_in, tokens_out,
            cost, False, metadata, "application/json", "application/json", 90, len(RESPONSE),
            REQUEST % model.encode(), True, RESPONSE, True, "bench/1.0", True,
        )  # fmt: skip
        yield row, [(log_id, "user", user), (log_id, "env", env)]


def load_sqlite(path: str, count: int, end: datetime, days: int) -> None:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    placeholders = ",".join("?" * len(LOG_COLUMNS))
    log_sql = f"INSERT INTO logs ({','.join(LOG_COLUMNS)}) VALUES ({placeholders})"
    meta_sql = "INSERT INTO log_metadata (log_id, key, account_id, gateway_id, value) VALUES (?,?,?,?,?)"
    rows: list[tuple[Any, ...]] = []
    entries: list[tuple[Any, ...]] = []
    with connection:
        for row, meta in generate(count, end, days):
            created = row[3].strftime("%Y-%m-%d %H:%M:%S.%f")  # as SQLAlchemy stores it
            rows.append((*row[:3], created, *row[4:]))
            entries.extend((log_id, key, ACCOUNT, GATEWAY, value) for log_id, key, value in meta)
            if len(rows) >= 20_000:
                connection.executemany(log_sql, rows)
                connection.executemany(meta_sql, entries)
                rows, entries = [], []
        connection.executemany(log_sql, rows)
        connection.executemany(meta_sql, entries)
        connection.execute("INSERT INTO log_counters VALUES (?, ?, ?)", (ACCOUNT, GATEWAY, count))
    connection.execute("ANALYZE")
    connection.close()


async def load_postgres(url: str, count: int, end: datetime, days: int) -> None:
    connection = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
    try:
        batch: list[tuple[Any, ...]] = []
        entries: list[tuple[Any, ...]] = []
        for row, meta in generate(count, end, days):
            batch.append(row)
            entries.extend((log_id, key, ACCOUNT, GATEWAY, value) for log_id, key, value in meta)
            if len(batch) >= 50_000:
                await connection.copy_records_to_table("logs", records=batch, columns=LOG_COLUMNS)
                await connection.copy_records_to_table("log_metadata", records=entries)
                batch, entries = [], []
        await connection.copy_records_to_table("logs", records=batch, columns=LOG_COLUMNS)
        await connection.copy_records_to_table("log_metadata", records=entries)
        await connection.execute("INSERT INTO log_counters VALUES ($1, $2, $3)", ACCOUNT, GATEWAY, count)
        await connection.execute("VACUUM ANALYZE")  # what autovacuum does after a load
    finally:
        await connection.close()


async def recreate_postgres(url: str) -> None:
    parsed = make_url(url)
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(False)
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await connection.close()


def prepare(url: str, count: int, days: int, reuse: bool) -> None:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    if reuse:
        return
    if is_sqlite(url):
        Path(make_url(url).database or "").unlink(missing_ok=True)
    else:
        asyncio.run(recreate_postgres(url))
    upgrade(url)
    started = time.perf_counter()
    gateway_sql = (
        "INSERT INTO gateways (account_id, id, cache_ttl, cache_invalidate_on_update, collect_logs, "
        "rate_limiting_limit, rate_limiting_interval, rate_limiting_technique, authentication, "
        "created_at, modified_at) VALUES ('bench', 'big', 0, false, true, 0, 0, 'fixed', false, "
        "'2000-01-01 00:00:00', '2000-01-01 00:00:00')"
    )
    if is_sqlite(url):
        path = make_url(url).database or ""
        with sqlite3.connect(path) as connection:
            connection.execute(gateway_sql.replace("false", "0").replace("true", "1"))
        load_sqlite(path, count, end, days)
    else:

        async def pg() -> None:
            connection = await asyncpg.connect(
                make_url(url).set(drivername="postgresql").render_as_string(False)
            )
            await connection.execute(gateway_sql)
            await connection.close()
            await load_postgres(url, count, end, days)

        asyncio.run(pg())
    print(f"loaded {count:,} rows in {time.perf_counter() - started:.1f} s")


async def timed(
    name: str, call: Callable[[], Awaitable[httpx.Response]], runs: int, target_ms: float
) -> None:
    for _ in range(2):  # warm-up: caches, prepared statements
        response = await call()
        assert response.status_code == 200, response.text
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = await call()
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    samples.sort()
    median, p95 = statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]
    verdict = "ok" if p95 <= target_ms else "SLOW"
    print(f"{name:<44} median {median:8.1f} ms   p95 {p95:8.1f} ms   target {target_ms:5.0f} ms  {verdict}")


async def measure(url: str, runs: int) -> None:
    settings = Settings(_env_file=None, database_url=url, admin_token=ADMIN)  # type: ignore[call-arg]
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {ADMIN}"}
    base = f"/client/v4/accounts/{ACCOUNT}/ai-gateway/gateways/{GATEWAY}"
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", headers=headers) as http:
            first = (await http.get(f"{base}/logs")).json()
            total = first["result_info"]["total_count"]
            newest = first["result"][0]["created_at"]
            print(f"{total:,} rows; newest {newest}")
            ids = [
                r["id"]
                for r in (
                    await http.get(f"{base}/logs", params={"page": max(1, total // 100), "per_page": 50})
                ).json()["result"]
            ]
            rng = random.Random(7)
            filters = json.dumps(
                [
                    {"key": "provider", "operator": "eq", "value": ["openai"]},
                    {"key": "success", "operator": "eq", "value": [True]},
                    {"key": "metadata.value", "operator": "eq", "value": ["u123"]},
                ]
            )
            end = datetime.fromisoformat(newest.replace("Z", "+00:00")) - timedelta(days=2)
            day = {"start_date": (end - timedelta(days=1)).isoformat(), "end_date": end.isoformat()}

            await timed(
                "newest page (20 rows, total from counter)", lambda: http.get(f"{base}/logs"), runs, 50
            )
            await timed(
                "filtered page (provider+success+metadata)",
                lambda: http.get(f"{base}/logs", params={"filters": filters}),
                runs,
                200,
            )
            await timed(
                "filtered, plain params + metadata pair",
                lambda: http.get(
                    f"{base}/logs",
                    params={
                        "provider": "anthropic", "success": "true",
                        "filters": json.dumps([{"key": "metadata.key", "operator": "eq", "value": ["user"]},
                                               {"key": "metadata.value", "operator": "eq", "value": ["u7"]}]),
                    },
                ),
                runs,
                200,
            )  # fmt: skip
            await timed("one log", lambda: http.get(f"{base}/logs/{rng.choice(ids)}"), runs, 50)
            await timed(
                "analytics over a day (hourly)", lambda: http.get(f"{base}/analytics", params=day), runs, 1000
            )
            await timed(
                "analytics over a day by provider",
                lambda: http.get(f"{base}/analytics", params={**day, "group_by": "provider"}),
                max(3, runs // 4),
                1000,
            )
            await timed(
                "extra: page 100 of a day's range",
                lambda: http.get(f"{base}/logs", params={**day, "page": 100}),
                runs,
                200,
            )


def explain(url: str) -> None:
    """Query plans of the list queries, to show which indexes serve them."""
    newest = "SELECT id FROM logs WHERE account_id='bench' AND gateway_id='big' ORDER BY id DESC LIMIT 20"
    filtered = (
        "SELECT id FROM logs WHERE account_id='bench' AND gateway_id='big' AND provider='openai' AND success "
        "AND id IN (SELECT log_id FROM log_metadata WHERE account_id='bench' AND gateway_id='big' "
        "AND value IN ('u123')) ORDER BY id DESC LIMIT 20"
    )
    if is_sqlite(url):
        with sqlite3.connect(make_url(url).database or "") as connection:
            for sql in (newest, filtered.replace("AND success", "AND success = 1")):
                plan = connection.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
                print("plan:", " | ".join(str(step[-1]) for step in plan))
        return

    async def pg() -> None:
        connection = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
        try:
            for sql in (newest, filtered):
                plan = await connection.fetch(f"EXPLAIN {sql}")
                print("plan:\n  " + "\n  ".join(r[0] for r in plan))
        finally:
            await connection.close()

    asyncio.run(pg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("AIGW_BENCH_DATABASE_URL"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=7, help="the rows span this many days")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--reuse", action="store_true", help="keep the rows of a previous run")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.gettempdir()}/aigw-bench-logs.db"
    print(f"database: {make_url(url).render_as_string(hide_password=True)}")
    prepare(url, args.rows, args.days, args.reuse)
    asyncio.run(measure(url, args.runs))
    explain(url)


if __name__ == "__main__":
    main()

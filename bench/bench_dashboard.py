"""Dashboard speed with a million log rows, measured in a real browser.

Builds a SQLite database with the project's migrations, bulk-inserts `--rows` realistic log rows
for one gateway spread over the last 36 h (raw `executemany` in large transactions: minutes, not
the hours the writer path would take) into a database at the revision before the hourly summary,
migrates it to head (which fills the summary from the rows, timed), starts `aigw serve` on it, and in headless Chromium
(playwright) signs in with the admin token and times, from navigation:

- Logs: until the first page's rows are in the table (`tbody tr` attached);
- Overview 24 h: until the charts are drawn (the fifth chart's uPlot `canvas` attached) and the
  totals shown.

The clock is the browser's: the page is opened on `about:blank`, `performance.now()` is read in
the page right before `location.hash` changes to the target route (the dashboard is a hash-routed
single page app, so that is the navigation a user makes by clicking a link), and again right after
the selector appears; the difference is printed. Each page is measured `--rounds` times after one
warm-up round (the first one also pays for loading the page's scripts), median and max reported.

    .venv/bin/python bench/bench_dashboard.py [--rows 1000000] [--rounds 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.processes import ServerProcess  # noqa: E402

ADMIN = "bench-admin-token"
ACCOUNT = "acct"
GATEWAY = "bench"
BATCH = 50_000
MODELS = (
    ("openai", "gpt-4o-mini", 0.15e-6, 0.6e-6),
    ("openai", "gpt-4o", 2.5e-6, 10e-6),
    ("anthropic", "claude-3-5-haiku", 0.8e-6, 4e-6),
    ("workers-ai", "@cf/meta/llama-3.1-8b-instruct", 0.0, 0.0),
)
_ULID_CHARS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(when: datetime, rand: random.Random) -> str:
    """A ULID for `when` (ids sort as time, as the gateway's own do)."""
    ms = int(when.timestamp() * 1000)
    head = "".join(_ULID_CHARS[(ms >> (5 * i)) & 31] for i in reversed(range(10)))
    return head + "".join(rand.choice(_ULID_CHARS) for _ in range(16))


def fill(db: Path, rows: int) -> float:
    """Insert `rows` log rows (and the gateway and its counter); returns seconds taken."""
    started = time.perf_counter()
    rand = random.Random(7)
    now = datetime.now(UTC)
    span = timedelta(hours=36).total_seconds()
    connection = sqlite3.connect(db)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")  # a benchmark fixture: durability does not matter
    created = (now - timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S.%f")
    connection.execute(
        "INSERT INTO gateways (account_id, id, created_at, modified_at, cache_invalidate_on_update,"
        " cache_ttl, collect_logs, rate_limiting_interval, rate_limiting_limit,"
        " rate_limiting_technique, authentication, log_management_strategy)"
        " VALUES (?, ?, ?, ?, 0, 0, 1, 0, 0, 'fixed', 0, 'STOP_INSERTING')",
        (ACCOUNT, GATEWAY, created, created),
    )
    columns = (
        "id, account_id, gateway_id, created_at, provider, model, path, request_type, step,"
        " status_code, success, cached, attempts, duration_ms, ttfb_ms, tokens_in, tokens_out, cost,"
        " custom_cost, metadata, request_size, response_size, request_body_complete,"
        " response_body_complete, authenticated"
    )
    sql = f"INSERT INTO logs ({columns}) VALUES ({', '.join('?' * len(columns.split(',')))})"
    for start in range(0, rows, BATCH):
        batch = []
        for _ in range(min(BATCH, rows - start)):
            when = now - timedelta(seconds=rand.random() * span)
            provider, model, price_in, price_out = rand.choice(MODELS)
            success = rand.random() > 0.03
            cached = success and rand.random() < 0.1
            tokens_in, tokens_out = rand.randint(10, 2000), rand.randint(1, 800)
            batch.append(
                (
                    ulid(when, rand),
                    ACCOUNT,
                    GATEWAY,
                    when.strftime("%Y-%m-%d %H:%M:%S.%f"),
                    provider,
                    model,
                    "chat/completions",
                    "universal",
                    0,
                    200 if success else 500,
                    success,
                    cached,
                    1,
                    rand.randint(5, 30) if cached else int(rand.lognormvariate(6, 0.6)),
                    rand.randint(5, 400),
                    tokens_in,
                    tokens_out,
                    tokens_in * price_in + tokens_out * price_out,
                    False,
                    f'{{"team": "{rand.choice(("search", "chat", "ads"))}"}}',
                    rand.randint(200, 4000),
                    rand.randint(200, 8000),
                    True,
                    True,
                    True,
                )
            )
        with connection:
            connection.executemany(sql, batch)
    with connection:
        connection.execute(
            "INSERT INTO log_counters (account_id, gateway_id, log_count) VALUES (?, ?, ?)",
            (ACCOUNT, GATEWAY, rows),
        )
    connection.execute("ANALYZE")  # what a long-running database would have (sqlite_stat1)
    connection.close()
    return time.perf_counter() - started


def timed(page: Any, route: str, selector: str, count: int = 1) -> float:
    """Milliseconds, on the page's clock, from setting the hash route to `count` matches."""
    page.evaluate("() => { location.hash = '#/'; }")
    page.wait_for_timeout(300)  # leave the previous page: its requests and charts are gone
    t0 = page.evaluate(f"() => {{ const t = performance.now(); location.hash = {route!r}; return t; }}")
    page.locator(selector).nth(count - 1).wait_for(state="attached", timeout=60_000)
    return float(page.evaluate("() => performance.now()")) - float(t0)


def measure(base: str, rounds: int, chromium: str) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    results: dict[str, list[float]] = {"logs": [], "overview": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        page.goto(f"{base}/")
        page.get_by_label("Account").fill(ACCOUNT)
        page.get_by_label("Token").fill(ADMIN)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("navigation", name="Main").wait_for()
        logs = f"#/logs?gateway={GATEWAY}"
        overview = f"#/overview?gateway={GATEWAY}&range=24h"
        for index in range(rounds + 1):
            took_logs = timed(page, logs, "tbody tr")
            # Five charts, each a uPlot canvas; the last one drawn means the Overview is complete.
            took_overview = timed(page, overview, ".chart canvas", count=5)
            if index:  # the first round is a warm-up
                results["logs"].append(took_logs)
                results["overview"].append(took_overview)
        browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="reuse/keep the database in this directory")
    args = parser.parse_args()
    chromium = os.environ.get("AIGW_TEST_CHROMIUM") or shutil.which("chromium") or "chromium"
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="aigw-bench-dash-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "bench.db"
    url = f"sqlite:///{db}"
    if not db.exists():
        from app.db.migrate import upgrade

        # The rows go in before the hourly summary exists, as in a database upgraded to this
        # version; its migration then fills the summary (timed: what such an upgrade costs).
        upgrade(url, "0005_rest")
        print(f"inserted {args.rows:,} rows in {fill(db, args.rows):.1f} s")
        started = time.perf_counter()
        upgrade(url)
        print(f"migrated to head (hourly summary filled) in {time.perf_counter() - started:.1f} s")
    else:
        # An existing database: bring it to the current schema (e.g. new indexes) first.
        subprocess.run(
            [sys.executable, "-m", "app.cli", "migrate"],
            cwd=ROOT,
            check=False,
            env={**os.environ, "AIGW_DATABASE_URL": url},
        )
    env = {"AIGW_DATABASE_URL": url, "AIGW_ADMIN_TOKEN": ADMIN, "AIGW_REDIS_URL": ""}
    server = ServerProcess(env, log_path=workdir / "serve.log").start()
    try:
        server.wait_ready(120)
        results = measure(server.url, args.rounds, chromium)
    finally:
        server.terminate()
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    for name, label in (("logs", "Logs, first page rows"), ("overview", "Overview 24 h, charts drawn")):
        values = results[name]
        print(f"{label:30} median {statistics.median(values):7.0f} ms  max {max(values):7.0f} ms")


if __name__ == "__main__":
    main()

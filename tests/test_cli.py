"""`aigw` in a subprocess against a temp SQLite file: bootstrap tokens and gateways with no server,
and `serve` starting the real app."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.auth.principals import Principal, identify
from app.core.errors import Unauthorized
from app.db.session import create_engine, session_factory
from app.services.config import ConfigCache

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/cli.db"


def cli_env(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGW_")}
    return {**env, "AIGW_DATABASE_URL": db_url, **extra}


@pytest.fixture
def aigw(db_url: str, tmp_path: Path) -> Run:
    def run(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            cwd=tmp_path,  # no developer .env is picked up
            env=cli_env(db_url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == expect, (done.stdout, done.stderr)
        return done

    return run


async def who(db_url: str, value: str) -> Principal:
    engine = create_engine(db_url)
    try:
        return await identify(ConfigCache(session_factory(engine), ttl=0), None, f"Bearer {value}")
    finally:
        await engine.dispose()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def test_tokens_create_prints_a_working_value(aigw: Run, db_url: str) -> None:
    done = aigw(
        "tokens", "create", "--account", "acct1", "--name", "ci",
        "--permission", "read", "--permission", "edit", "--gateway", "gw1",
    )  # fmt: skip
    value = done.stdout.strip()
    assert value.startswith("aigw_") and "\n" not in value
    assert value not in done.stderr and "token id:" in done.stderr
    token_id = done.stderr.split("token id:", 1)[1].split()[0]

    principal = await who(db_url, value)
    assert principal.token_id == token_id and principal.account_id == "acct1"
    assert principal.permissions == {"read", "edit"} and principal.gateways == {"gw1"}

    listed = json_lines(aigw("tokens", "list", "--account", "acct1").stdout)
    assert [t["id"] for t in listed] == [token_id] and "value" not in listed[0]
    assert json_lines(aigw("tokens", "list", "--account", "other").stdout) == []

    aigw("tokens", "revoke", "--account", "other", "--id", token_id, expect=1)
    revoked = json_lines(aigw("tokens", "revoke", "--account", "acct1", "--id", token_id).stdout)
    assert revoked[0]["revoked_at"] is not None
    with pytest.raises(Unauthorized):
        await who(db_url, value)


async def test_tokens_create_defaults_to_run_on_every_gateway(aigw: Run, db_url: str) -> None:
    value = aigw("tokens", "create", "--account", "acct1").stdout.strip()
    principal = await who(db_url, value)
    assert principal.permissions == {"run"} and principal.gateways is None


def test_tokens_create_rejects_bad_input(aigw: Run) -> None:
    bad = aigw("tokens", "create", "--account", "a", "--expires-on", "2001-01-01T00:00:00Z", expect=2)
    assert "expires_on" in bad.stderr and bad.stdout == ""
    assert "gateways" in aigw("tokens", "create", "--account", "a", "--gateway", "no way", expect=2).stderr
    aigw("tokens", "create", "--account", "a", "--permission", "admin", expect=2)  # argparse choices


def test_gateways_create_and_list(aigw: Run) -> None:
    options = ["--authentication", "--cache-ttl", "30", "--no-collect-logs", "--rate-limit", "10"]
    options += ["--rate-limit-interval", "60", "--rate-limit-technique", "sliding"]
    created = json_lines(aigw("gateways", "create", "--account", "acct1", "--id", "gw1", *options).stdout)[0]
    assert created["id"] == "gw1" and created["authentication"] is True and created["collect_logs"] is False
    assert created["cache_ttl"] == 30 and created["rate_limiting_limit"] == 10
    assert created["rate_limiting_interval"] == 60 and created["rate_limiting_technique"] == "sliding"
    plain = json_lines(aigw("gateways", "create", "--account", "acct1", "--id", "gw2").stdout)[0]
    assert plain["authentication"] is False and plain["collect_logs"] is True and plain["cache_ttl"] == 0

    again = aigw("gateways", "create", "--account", "acct1", "--id", "gw1", expect=1)
    assert "already exists" in again.stderr
    assert "id" in aigw("gateways", "create", "--account", "acct1", "--id", "bad id", expect=2).stderr

    listed = json_lines(aigw("gateways", "list", "--account", "acct1").stdout)
    assert sorted(g["id"] for g in listed) == ["gw1", "gw2"]
    assert json_lines(aigw("gateways", "list", "--account", "nobody").stdout) == []


def test_migrate(aigw: Run, tmp_path: Path) -> None:
    aigw("migrate")
    aigw("migrate")  # again: nothing to do
    assert (tmp_path / "cli.db").is_file()


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("aigw")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "serve" in done.stdout and "tokens" in done.stdout


def test_serve_migrates_and_answers(db_url: str, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=cli_env(db_url, AIGW_ADMIN_TOKEN="admin-secret"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/client/v4/accounts/a/ai-gateway/gateways"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                response = httpx.get(url, headers={"Authorization": "Bearer admin-secret"})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "aigw serve did not start"
                time.sleep(0.1)
        assert response.status_code == 200 and response.json()["success"] is True
    finally:
        proc.terminate()
        proc.wait(timeout=15)

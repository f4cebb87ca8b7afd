"""What a newcomer sees from `aigw`: every command names its database, read-only commands never
create one, `serve` says where it listens and what it uses, warns when it is exposed, and reads
`AIGW_UPSTREAM_*` from a `.env` file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.fake_upstream import FakeUpstream
from tests.support.helpers import create_gateway
from tests.support.processes import ServerProcess, free_port


def run_aigw(cwd: Path, *args: str, expect: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIGW_")}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd, env={**base, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == expect, (done.stdout, done.stderr)
    return done


def test_read_only_commands_never_create_a_database(tmp_path: Path) -> None:
    for command in (["tokens", "list"], ["gateways", "list"], ["tokens", "revoke", "--id", "x"]):
        done = run_aigw(tmp_path, *command, "--account", "acct", expect=1)
        expected = tmp_path.resolve() / "data" / "aigw.db"
        assert f"database SQLite file {expected} (not created yet)" in done.stderr
        assert f"no database at {expected}" in done.stderr and "AIGW_DATABASE_URL" in done.stderr
        assert done.stdout == ""
    assert not (tmp_path / "data").exists()


def test_every_command_names_its_database(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "gw.db"
    url = f"sqlite:///{db}"
    created = run_aigw(tmp_path, "tokens", "create", "--account", "acct", AIGW_DATABASE_URL=url)
    assert f"aigw: database SQLite file {db}" in created.stderr and created.stdout.startswith("aigw_")
    listed = run_aigw(tmp_path, "tokens", "list", "--account", "acct", AIGW_DATABASE_URL=url)
    assert f"aigw: database SQLite file {db}\n" in listed.stderr and listed.stdout.count("\n") == 1
    migrated = run_aigw(tmp_path, "migrate", AIGW_DATABASE_URL=url)
    assert f"database SQLite file {db}" in migrated.stderr and "up to date" in migrated.stderr


def test_serve_reports_what_it_uses(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    env = {"AIGW_DATABASE_URL": f"sqlite:///{tmp_path}/aigw.db", "AIGW_ADMIN_TOKEN": "t" * 20}
    with ServerProcess(env, log_path=log) as server:
        output = log.read_text()
    assert f"aigw: listening on {server.url}" in output
    assert f"aigw: API docs {server.url}/docs, guide {server.url}/docs/guide/" in output
    assert f"aigw: database SQLite file {tmp_path.resolve()}/aigw.db" in output
    assert "aigw: redis none" in output
    assert "WARNING" not in output  # loopback: nothing exposed


def test_serve_warns_when_exposed(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    env = {"AIGW_DATABASE_URL": f"sqlite:///{tmp_path}/aigw.db"}
    run_aigw(tmp_path, "gateways", "create", "--account", "acct", "--id", "open-gw", **env)
    run_aigw(tmp_path, "gateways", "create", "--account", "acct", "--id", "closed", "--authentication", **env)
    with ServerProcess(env, "--host", "0.0.0.0", log_path=log):
        output = log.read_text()
    assert "WARNING: aigw listens on 0.0.0.0, beyond this machine, with no AIGW_ADMIN_TOKEN" in output
    assert "these gateways need no token (authentication off): acct/open-gw;" in output


def test_upstream_overrides_from_a_dotenv_file(tmp_path: Path, upstream: FakeUpstream) -> None:
    """`.env` in the directory `aigw serve` runs in, as pydantic-settings reads it for fields."""
    port = free_port()
    (tmp_path / ".env").write_text(
        f"AIGW_DATABASE_URL=sqlite:///{tmp_path}/aigw.db\nAIGW_ADMIN_TOKEN=test-admin-token\n"
        f"AIGW_UPSTREAM_OPENAI={upstream.url}/v1\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIGW_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=tmp_path, env=base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        server = ServerProcess({})
        server.proc, server.url = proc, url
        server.wait_ready()
        create_gateway(url, gateway_id="dotenv")
        response = httpx.post(
            f"{url}/v1/acct/dotenv/openai/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": "Bearer sk-test"},
        )
        assert response.status_code == 200, response.text
        assert upstream.last.path == "/v1/chat/completions"
    finally:
        proc.terminate()
        proc.wait(30)

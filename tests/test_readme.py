"""The README's *First requests* run as written: its shell blocks, in order, in one bash script
from the repository root, against the fake provider (every `AIGW_UPSTREAM_*` points at it) on a
free port instead of 8787. curl fails the script on any HTTP error status (`--fail-with-body`), so
a management command the server refuses, or a 4xx/5xx from a gateway path, fails the test. The
guide pages the README links exist and are served by the gateway."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import GatewayServer
from tests.support.fake_upstream import FakeUpstream, upstream_overrides_for
from tests.support.processes import REPO, free_port

README = REPO / "README.md"
SECTION = "## First requests"

# curl fails on HTTP errors and shows why; the server started by the script dies with it.
PRELUDE = """set -euo pipefail
curl() { command curl --fail-with-body --show-error --max-time 30 "$@"; }
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
"""


def section_blocks(markdown: str, heading: str) -> list[str]:
    section = markdown.split(heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def test_the_first_requests_section_runs_as_written(tmp_path: Path, upstream: FakeUpstream) -> None:
    if not (REPO / ".venv" / "bin" / "aigw").exists():
        pytest.skip("the README uses .venv/bin/aigw: run through ./scripts/test")
    blocks = section_blocks(README.read_text(), SECTION)
    assert len(blocks) == 3
    port = free_port()
    commands = "\n".join(blocks).replace("./scripts/serve &", f"./scripts/serve --port {port} &")
    script = PRELUDE + commands.replace("8787", str(port)) + "\necho README-DONE\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGW_")}
    env |= {
        f"AIGW_UPSTREAM_{slug.upper()}": url for slug, url in upstream_overrides_for(upstream.url).items()
    }
    env |= {"AIGW_DATABASE_URL": f"sqlite:///{tmp_path}/aigw.db", "OPENAI_API_KEY": "sk-readme",
            "ANTHROPIC_API_KEY": "sk-ant-readme"}  # fmt: skip
    proc = subprocess.Popen(
        ["bash", "-c", script], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0 and "README-DONE" in output, output
    assert '"success":true' in output.replace(" ", "")  # the gateway was created
    paths = [request.path for request in upstream.requests]
    # pass-through, the chain's first step, the WebSocket request; the authenticated repeat of the
    # pass-through is a cache hit (the gateway was created with cache_ttl 300)
    assert paths == ["/v1/chat/completions", "/v1/messages", "/v1/chat/completions"]
    keys = [r.headers.get("authorization") or r.headers.get("x-api-key") for r in upstream.requests]
    assert keys == ["Bearer sk-readme", "sk-ant-readme", "Bearer sk-readme"]


def test_no_link_leaves_the_repository() -> None:
    for page in [README, *sorted((REPO / "docs").glob("*.md"))]:
        text = page.read_text()
        assert "../shared" not in text and "spec/" not in text, page
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if not target.startswith(("http://", "https://", "/")):
                assert (page.parent / target).exists(), (page, target)


def test_the_guide_is_served(server: GatewayServer) -> None:
    index = httpx.get(f"{server.url}/docs/guide/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    for name in ("protocol.md", "configuration.md", "operations.md", "errors.md", "limits.md", "security.md"):
        assert f'href="{name}"' in index.text
        page = httpx.get(f"{server.url}/docs/guide/{name}")
        assert page.status_code == 200 and "<h1>" in page.text and "<table>" in page.text
    assert "cf-aig-cache-ttl" in httpx.get(f"{server.url}/docs/guide/protocol").text
    assert "http" not in re.sub(r'href="https?://[^"]*"', "", index.text).split("<body>")[0].replace(
        "http-equiv", ""
    )  # the page head loads nothing
    missing = httpx.get(f"{server.url}/docs/guide/nope.md")
    assert missing.status_code == 404
    assert httpx.get(f"{server.url}/docs/guide", follow_redirects=False).status_code == 307

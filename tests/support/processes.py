"""`aigw serve` as a real server process, for the multi-process, shutdown and benchmark tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """`python -m app.cli serve --port P` with `env` added to this process's environment (any
    AIGW_* variable of the developer's shell is removed first, so only `env` configures it)."""

    def __init__(self, env: dict[str, str], *args: str, log_path: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith("AIGW_")}
        self.env = {**base, **env}
        self.args = ["serve", "--port", str(self.port), *args]
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        output = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *self.args],
            cwd=REPO,
            env=self.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a SIGINT to the test run does not reach it first
        )
        return self

    def wait_ready(self, timeout: float = 40.0) -> ServerProcess:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server on port {self.port} not ready after {timeout} s: {self.output()}")

    def output(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-4000:]

    def terminate(self, timeout: float = 40.0) -> int:
        """SIGTERM, then the exit status (killed after `timeout`)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
            raise

    def __enter__(self) -> ServerProcess:
        """Starts the server (unless `start` was called) and waits until it answers."""
        if self.proc is None:
            self.start()
        return self.wait_ready()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # The server leads its own process group: this also ends its uvicorn workers.
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@contextmanager
def two_replicas(env: dict[str, str], logs: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two `aigw serve` processes on the same settings (so the same database and Redis), started
    at once — their migrations race on an empty database, the advisory lock serialises them —
    both ready when this yields; each must then exit cleanly (killed on the way out if not)."""
    first = ServerProcess(env, log_path=logs / "a.log").start()
    second = ServerProcess(env, log_path=logs / "b.log").start()
    with first, second:
        first.wait_ready()
        second.wait_ready()
        yield first, second
        assert first.terminate() == 0, first.output()
        assert second.terminate() == 0, second.output()

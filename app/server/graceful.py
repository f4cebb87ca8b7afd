"""uvicorn with a graceful WebSocket drain.

uvicorn closes open WebSockets with 1012 the moment it starts shutting down, cutting requests in
flight. This server first stops listening, lets each session finish its in-flight requests (up to
the grace period) and close with 1001, then runs uvicorn's own shutdown, which waits for HTTP
requests and streams and runs the lifespan shutdown that flushes the log queue.

With several workers, the supervisor also gives prometheus_client a fresh directory for the
workers' metric files (PROMETHEUS_MULTIPROC_DIR, removed at exit) and marks each worker that exits
as dead there, so `/metrics` sums every worker (app/core/metrics.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from prometheus_client.multiprocess import mark_process_dead
from uvicorn.supervisors import multiprocess

METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def _find_app(app: Any) -> FastAPI | None:
    """uvicorn wraps the app in its own middleware; walk down to ours."""
    for _ in range(10):
        if isinstance(app, FastAPI):
            return app
        app = getattr(app, "app", None)
    return None


class GracefulServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        app = _find_app(self.config.loaded_app)
        registry = getattr(app.state, "ws_sessions", None) if app is not None else None
        if registry is not None and len(registry):
            await registry.drain(self.config.timeout_graceful_shutdown or 30.0)
        await super().shutdown(sockets)
        # uvicorn re-raises the captured SIGTERM once serving ends, so the process would die "by
        # signal" after a clean drain; a graceful stop exits 0 instead.
        self._captured_signals = [sig for sig in self._captured_signals if sig != signal.SIGTERM]


class GracefulProcess(multiprocess.Process):
    """A uvicorn worker process that runs GracefulServer."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = GracefulServer(config=self.config)
        return self._server

    def join(self) -> None:
        """Every worker that ends (stopped, crashed, killed as hung, retired) is joined here: drop
        its live gauges (in-flight requests, open sockets, queue depth) from the metrics."""
        super().join()
        directory = os.environ.get(METRICS_DIR)
        if directory and self.pid is not None:
            mark_process_dead(self.pid, directory)


@contextmanager
def _metrics_dir() -> Iterator[None]:
    """A fresh, empty PROMETHEUS_MULTIPROC_DIR for this server's workers (they inherit the
    environment), removed when the server stops: no counts left over from an earlier run."""
    directory = tempfile.mkdtemp(prefix="aigw-metrics-")
    previous = os.environ.get(METRICS_DIR)
    os.environ[METRICS_DIR] = directory
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(METRICS_DIR, None)
        else:
            os.environ[METRICS_DIR] = previous
        shutil.rmtree(directory, ignore_errors=True)


def run(config: uvicorn.Config) -> None:
    """As `uvicorn.run`, with GracefulServer in every worker."""
    if config.workers > 1:
        # uvicorn's supervisor names its worker class as a module global; point it at ours. Only
        # the supervisor (this process) creates workers, and they are pickled by class reference.
        multiprocess.Process = GracefulProcess  # type: ignore[misc]
        with _metrics_dir():
            multiprocess.Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        GracefulServer(config).run()

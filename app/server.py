"""uvicorn with a graceful WebSocket drain.

uvicorn closes open WebSockets with 1012 the moment it starts shutting down, cutting requests in
flight. This server first stops listening, lets each session finish its in-flight requests (up to
the grace period) and close with 1001, then runs uvicorn's own shutdown, which waits for HTTP
requests and streams and runs the lifespan shutdown that flushes the log queue.
"""

from __future__ import annotations

import signal
import socket
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import multiprocess


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


def run(config: uvicorn.Config) -> None:
    """As `uvicorn.run`, with GracefulServer in every worker."""
    if config.workers > 1:
        # uvicorn's supervisor names its worker class as a module global; point it at ours. Only
        # the supervisor (this process) creates workers, and they are pickled by class reference.
        multiprocess.Process = GracefulProcess  # type: ignore[misc]
        multiprocess.Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        GracefulServer(config).run()

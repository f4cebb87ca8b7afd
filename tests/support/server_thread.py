"""Run any ASGI app with uvicorn on a loopback port in a background thread (the fake upstreams,
and gateways under test)."""

from __future__ import annotations

import socket
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from types import TracebackType
from typing import Any, Literal

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# --------------------------------------------------------------------------------------------------
# ServerThread: any ASGI app on 127.0.0.1, in a background thread.
# --------------------------------------------------------------------------------------------------


class ServerThread:
    """Run an ASGI app with uvicorn on a free loopback port in a daemon thread.

    The listening socket is bound before the thread starts, so `.port`/`.url` are known at once and
    there is no race for the port. `start()` returns once uvicorn reports `started` (after the
    lifespan startup), and raises with the app's traceback if startup failed.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        lifespan: Literal["auto", "on", "off"] = "on",
        startup_timeout_s: float = 15.0,
        shutdown_timeout_s: float = 5.0,
        name: str = "asgi-server",
        **config_kwargs: Any,
    ) -> None:
        self.app = app
        self.host = host
        self.lifespan = lifespan
        self.startup_timeout_s = startup_timeout_s
        self.shutdown_timeout_s = shutdown_timeout_s
        self.name = name
        self.config_kwargs = config_kwargs
        self.port: int = 0
        self.server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._errors: list[str] = []

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    async def _wrapped(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass-through that remembers why the lifespan startup failed, to report it from start()."""
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                self._errors.append(str(message.get("message", "")))
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException:
            self._errors.append(traceback.format_exc())
            raise

    def start(self) -> ServerThread:
        if self._thread is not None:
            raise RuntimeError("server already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        options: dict[str, Any] = {
            "log_level": "warning",
            "log_config": None,  # leave logging to pytest; only set levels
            "access_log": False,
            "timeout_graceful_shutdown": 1,
            **self.config_kwargs,
        }
        config = uvicorn.Config(
            self._wrapped,
            host=self.host,
            port=self.port,
            lifespan=self.lifespan,
            interface="asgi3",
            **options,
        )
        server = uvicorn.Server(config)
        self.server = server

        def run() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException:
                self._errors.append(traceback.format_exc())
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name=f"{self.name}:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not server.started:
            if not self._thread.is_alive():
                detail = "\n".join(self._errors) or "see the uvicorn.error log"
                raise RuntimeError(f"{self.name} failed to start:\n{detail}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start within {self.startup_timeout_s} s")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        thread, server = self._thread, self.server
        if thread is None or server is None:
            return
        server.should_exit = True
        thread.join(self.shutdown_timeout_s)
        if thread.is_alive():
            server.force_exit = True
            thread.join(self.shutdown_timeout_s)
        self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

"""Request log records and the batched writer that stores them off the request path.

The request path only fills a `LogRecord` and puts it on a queue. Parsing that is needed only for
the log (model name, token usage of a whole JSON body, cost) happens in the writer, in batches.
Durability trade-off (documented in the README): rows still queued when the process is killed
hard are lost; a normal shutdown flushes the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from ulid import ULID

from app.db.models import Log
from app.pipeline.types import CustomCost
from app.providers.cost import cost_of
from app.providers.usage import model_from_request, usage_from_body

logger = logging.getLogger("aigw.logs")


def new_log_id() -> str:
    return str(ULID())


@dataclass(slots=True)
class LogRecord:
    id: str
    account_id: str
    gateway_id: str
    provider: str
    path: str
    request_type: str
    step: int
    event_id: str | None
    connection_id: str | None
    user_agent: str | None
    authenticated: bool
    metadata: dict[str, Any] | None
    custom_cost: CustomCost | None
    model_in_path: bool
    keep_payload: bool
    body_limit: int
    request_body: bytes = b""
    request_content_type: str | None = None
    started: float = field(default_factory=time.perf_counter)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status_code: int | None = None
    success: bool = False
    cached: bool = False
    attempts: int = 0
    ttfb_ms: int | None = None
    duration_ms: int | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    response_content_type: str | None = None
    response_head: bytes = b""
    response_size: int = 0
    usage_known: bool = False  # a stream scanner already filled tokens_in/out
    error: str | None = None
    # Realtime sessions: what a body-less WebSocket relay reports instead.
    model_override: str | None = None
    request_size_override: int | None = None
    frames_in: int | None = None
    frames_out: int | None = None
    close_code: int | None = None

    def mark_first_byte(self) -> None:
        self.ttfb_ms = round((time.perf_counter() - self.started) * 1000)

    def finish(self, status: int | None, success: bool, error: str | None = None) -> None:
        self.status_code = status
        self.success = success
        self.error = error
        self.duration_ms = round((time.perf_counter() - self.started) * 1000)

    def add_response_bytes(self, chunk: bytes) -> None:
        self.response_size += len(chunk)
        room = self.body_limit - len(self.response_head)
        if room > 0 and self.keep_payload:
            self.response_head += chunk[:room]

    def to_row(self) -> dict[str, Any]:
        model = self.model_override or model_from_request(self.request_body, self.path, self.model_in_path)
        if not self.usage_known and self.success and not self.cached:
            usage = usage_from_body(self.response_head)
            self.tokens_in, self.tokens_out = usage.tokens_in, usage.tokens_out
        cost = (
            0.0
            if self.cached
            else cost_of(self.provider, model, self.tokens_in, self.tokens_out, self.custom_cost)
        )
        request_head = self.request_body[: self.body_limit] if self.keep_payload else None
        return {
            "id": self.id,
            "account_id": self.account_id,
            "gateway_id": self.gateway_id,
            "created_at": self.created_at,
            "provider": self.provider,
            "model": model,
            "path": self.path[:2048],
            "request_type": self.request_type,
            "step": self.step,
            "event_id": self.event_id,
            "connection_id": self.connection_id,
            "status_code": self.status_code,
            "success": self.success,
            "cached": self.cached,
            "attempts": max(self.attempts, 1),
            "duration_ms": self.duration_ms,
            "ttfb_ms": self.ttfb_ms,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost": cost,
            "custom_cost": self.custom_cost is not None,
            "metadata": self.metadata,
            "request_content_type": self.request_content_type,
            "response_content_type": self.response_content_type,
            "request_size": (
                self.request_size_override
                if self.request_size_override is not None
                else len(self.request_body)
            ),
            "response_size": self.response_size,
            "request_body": request_head,
            "request_body_complete": self.keep_payload and len(self.request_body) <= self.body_limit,
            "response_body": self.response_head if self.keep_payload else None,
            "response_body_complete": self.keep_payload and self.response_size <= self.body_limit,
            "user_agent": self.user_agent[:512] if self.user_agent else None,
            "authenticated": self.authenticated,
            "error": self.error,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "close_code": self.close_code,
        }


class LogSink:
    """An in-process queue of finished records, written in batches by one background task."""

    def __init__(self, engine: AsyncEngine, batch_size: int, interval_s: float, max_queue: int) -> None:
        self._engine = engine
        self._batch_size = batch_size
        self._interval = interval_s
        self._queue: asyncio.Queue[LogRecord] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.written = 0

    def put(self, record: LogRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self.dropped += 1  # never block a request on logging; counted instead
            logger.error("log queue full: dropped log row %s", record.id)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="aigw-log-writer")

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Write everything queued, then stop the writer."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def flush(self) -> None:
        """Wait until every record queued so far is written (tests, shutdown)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if self._queue.qsize() + 1 < self._batch_size:
                await asyncio.sleep(self._interval)  # let a batch gather
            batch = [first]
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[LogRecord]) -> None:
        if not batch:
            return
        rows = [record.to_row() for record in batch]
        try:
            async with self._engine.begin() as connection:
                await connection.execute(insert(Log.__table__), rows)  # type: ignore[attr-defined]
            self.written += len(rows)
        except Exception:
            self.dropped += len(rows)
            logger.exception("could not write %d log rows", len(rows))

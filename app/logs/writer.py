"""The batched writer that stores log records off the request path.

Durability trade-off (documented in the README): rows still queued when the process is killed
hard are lost; a normal shutdown flushes the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.log_store import store_batch
from app.db.models import Log
from app.logs.record import LogRecord

logger = logging.getLogger("aigw.logs")

DROP_LOG_INTERVAL_S = 10.0
ROWS_BETWEEN_YIELDS = 16
# String columns with a length limit (PostgreSQL enforces them; SQLite does not).
_MAX_CHARS: dict[str, int] = {
    column.name: column.type.length
    for column in Log.__table__.columns  # type: ignore[attr-defined]
    if isinstance(getattr(column.type, "length", None), int)
}


def is_row_error(exc: Exception) -> bool:
    """A row that can never be stored (bad data: SQLSTATE classes 22 and 23), as opposed to a
    database that cannot be reached now."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    code = getattr(getattr(exc, "orig", None), "pgcode", None)
    return isinstance(code, str) and code[:2] in ("22", "23")


def storable(row: dict[str, Any]) -> dict[str, Any]:
    """The row with strings PostgreSQL would refuse made safe: NUL characters replaced, values cut
    to their column's length (a client's 300-character Content-Type must not fail its batch)."""
    for key, value in row.items():
        if isinstance(value, str):
            if "\x00" in value:
                value = row[key] = value.replace("\x00", "\ufffd")
            limit = _MAX_CHARS.get(key)
            if limit is not None and len(value) > limit:
                row[key] = value[:limit]
    return row


def footprint(record: LogRecord) -> int:
    """Bytes a queued record holds (its bodies, plus a fixed allowance for the rest)."""
    return len(record.request_body) + len(record.response_head) + 1024


class LogSink:
    """An in-process queue of finished records, written in batches by one background task.

    Database down: the batch in hand is retried with exponential backoff (`retry_initial_s`
    doubling up to `retry_max_s`) for as long as the database stays unreachable, while new rows
    wait in the queue. The queue is bounded by rows (`max_queue`) and by bytes (`max_bytes`), so
    memory stays bounded: once either bound is reached new rows are dropped, counted in `dropped`
    (metric `aigw_logs_dropped`) and reported by an error log line (at most one every 10 s). A row
    the database refuses as such (bad data) is isolated and dropped alone, never its whole batch.
    Rows still buffered when `stop` gives up are counted as dropped too. Nothing here ever makes a
    request wait.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        batch_size: int,
        interval_s: float,
        max_queue: int,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
        write_timeout_s: float = 60.0,
    ) -> None:
        self._engine = engine
        self._batch_size = batch_size
        self._interval = interval_s
        self._queue: asyncio.Queue[tuple[LogRecord, int]] = asyncio.Queue(maxsize=max_queue)
        self._max_bytes = max_bytes
        self._bytes = 0  # held by queued records and the batch in hand
        self._in_hand = 0
        self._retry_initial = retry_initial_s
        self._retry_max = retry_max_s
        self._write_timeout = write_timeout_s
        self._task: asyncio.Task[None] | None = None
        self._drops_unreported = 0
        self._last_drop_report = -DROP_LOG_INTERVAL_S
        self.dropped = 0
        self.written = 0
        self.refused = 0  # not stored: the gateway's log storage is full (STOP_INSERTING), or it was replaced
        self.retries = 0  # failed write attempts that were retried

    def put(self, record: LogRecord) -> None:
        """Queue a record; never waits. Over the row or byte bound it is dropped and counted."""
        size = footprint(record)
        if self._bytes + size > self._max_bytes:
            self._drop(1, "log buffer full (bytes)")
            return
        try:
            self._queue.put_nowait((record, size))
        except asyncio.QueueFull:
            self._drop(1, "log buffer full (rows)")
            return
        self._bytes += size

    @property
    def depth(self) -> int:
        """Rows waiting to be written: queued, plus the batch being written or retried."""
        return self._queue.qsize() + self._in_hand

    @property
    def buffered_bytes(self) -> int:
        return self._bytes

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="aigw-log-writer")

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Write everything queued (for at most `timeout_s`), then stop the writer. What could not
        be written by then (the database is down) is counted as dropped."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout_s)
        left = self.depth
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        while not self._queue.empty():
            self._bytes -= self._queue.get_nowait()[1]
            self._queue.task_done()
        if left:
            self._drop(left, f"not written within {timeout_s:g} s of shutdown", force=True)

    async def flush(self) -> None:
        """Wait until every record queued so far is written (tests, shutdown)."""
        await self._queue.join()

    def _drop(self, count: int, reason: str, *, force: bool = False) -> None:
        self.dropped += count
        self._drops_unreported += count
        self._report_drops(reason, force=force)

    def _report_drops(self, reason: str, *, force: bool = False) -> None:
        """One error line for the drops not reported yet, at most every DROP_LOG_INTERVAL_S."""
        now = time.monotonic()
        if self._drops_unreported and (force or now - self._last_drop_report >= DROP_LOG_INTERVAL_S):
            logger.error(
                "dropped %d log rows (%s); %d dropped since start",
                self._drops_unreported, reason, self.dropped,
            )  # fmt: skip
            self._drops_unreported = 0
            self._last_drop_report = now

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            self._in_hand = 1
            if self._queue.qsize() + 1 < self._batch_size:
                await asyncio.sleep(self._interval)  # let a batch gather
            batch = [first]
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            self._in_hand = len(batch)
            try:
                await self._write([record for record, _ in batch])
            finally:
                self._in_hand = 0
                self._bytes -= sum(size for _, size in batch)
                for _ in batch:
                    self._queue.task_done()

    async def _rows(self, batch: list[LogRecord]) -> list[dict[str, Any]]:
        rows = []
        for index, record in enumerate(batch):
            if index % ROWS_BETWEEN_YIELDS == ROWS_BETWEEN_YIELDS - 1:
                # A row costs tens of microseconds (body parsing for usage, cost); a whole batch
                # in one go would hold every request in flight for milliseconds.
                await asyncio.sleep(0)
            try:
                rows.append(storable(record.to_row()))
            except Exception:
                logger.exception("could not build log row %s", record.id)
                self._drop(1, "could not build the row", force=True)
        return rows

    async def _write(self, batch: list[LogRecord]) -> None:
        """Store the batch, retrying with backoff while the database is unreachable."""
        rows = await self._rows(batch)
        delay = self._retry_initial
        failures = 0
        while rows:
            try:
                await self._store(rows, retry=failures > 0)
                break
            except Exception as exc:
                if is_row_error(exc):
                    rows = await self._isolate(rows)
                    if not rows:
                        break
                failures += 1
                self.retries += 1
                if failures == 1:
                    logger.error(
                        "log database unavailable (%s: %s); %d rows buffered, retrying with backoff",
                        type(exc).__name__, exc, self.depth,
                    )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                self._report_drops("log buffer full while the database is unavailable")
        if failures:
            logger.warning("log database reachable again after %d failed attempts", failures)
            self._report_drops("log buffer full while the database was unavailable", force=True)

    async def _store(self, rows: list[dict[str, Any]], retry: bool = False) -> None:
        async with asyncio.timeout(self._write_timeout), self._engine.begin() as connection:
            written, refused = await store_batch(connection, rows, skip_existing=retry)
        self.written += written
        self.refused += refused

    async def _isolate(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Store rows one by one, dropping those the database refuses. Returns the rows left
        when the database became unreachable on the way (to be retried)."""
        for index, row in enumerate(rows):
            try:
                await self._store([row])
            except Exception as exc:
                if not is_row_error(exc):
                    return rows[index:]
                logger.error("log row %s refused by the database: %s", row["id"], exc)
                self._drop(1, "row refused by the database", force=True)
        return []

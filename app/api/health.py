"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import HTTPConnection

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness and log-queue depth")
async def healthz(conn: HTTPConnection) -> dict[str, object]:
    sink = conn.app.state.log_sink
    return {"status": "ok", "log_queue_depth": sink.depth, "logs_dropped": sink.dropped}

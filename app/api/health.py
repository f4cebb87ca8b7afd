"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import HTTPConnection
from starlette.responses import Response

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness and log-queue depth")
async def healthz(conn: HTTPConnection) -> dict[str, object]:
    sink = conn.app.state.log_sink
    return {"status": "ok", "log_queue_depth": sink.depth, "logs_dropped": sink.dropped}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(conn: HTTPConnection) -> Response:
    return Response(conn.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

"""Migration 0003 on a database that already has logs: metadata index rows and per-gateway counters
are back-filled, so an upgraded server lists, filters and limits its old logs correctly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.db.migrate import check_no_drift, upgrade
from tests.support.management import BACKENDS, backend_url, query_db

INSERT = """
INSERT INTO logs (id, account_id, gateway_id, created_at, provider, path, request_type, step, success,
                  cached, attempts, custom_cost, metadata, request_size, response_size,
                  request_body_complete, response_body_complete, authenticated)
VALUES (:id, 'acct', :gw, '2030-01-01 00:00:00', 'openai', 'p', 'provider', 0, :t, :f, 1, :f, :meta,
        0, 0, :t, :t, :f)
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_backfill(backend: str, tmp_path: Path) -> None:
    with backend_url(backend, tmp_path) as url:
        upgrade(url, "0002")
        rows = [
            ("01AAAAAAAAAAAAAAAAAAAAAAA1", "g1", {"user": "ann", "vip": True, "n": 3}),
            ("01AAAAAAAAAAAAAAAAAAAAAAA2", "g1", None),
            ("01AAAAAAAAAAAAAAAAAAAAAAA3", "g2", {"user": "bo"}),
        ]
        for log_id, gw, meta in rows:
            params = {"id": log_id, "gw": gw, "meta": json.dumps(meta), "t": True, "f": False}
            query_db(url, INSERT, params)
        upgrade(url)
        assert check_no_drift(url) == []
        entries = query_db(
            url, "SELECT log_id, key, value, gateway_id FROM log_metadata ORDER BY log_id, key"
        )
        assert entries == [
            ("01AAAAAAAAAAAAAAAAAAAAAAA1", "n", "3", "g1"),
            ("01AAAAAAAAAAAAAAAAAAAAAAA1", "user", "ann", "g1"),
            ("01AAAAAAAAAAAAAAAAAAAAAAA1", "vip", "true", "g1"),
            ("01AAAAAAAAAAAAAAAAAAAAAAA3", "user", "bo", "g2"),
        ]
        counters = query_db(url, "SELECT gateway_id, log_count FROM log_counters ORDER BY gateway_id")
        assert counters == [("g1", 2), ("g2", 1)]

"""The house rules of `app/` (scripts/import_graph.py): no import cycle between its packages, no
module over 400 lines, no `global`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import import_graph  # noqa: E402


def test_the_app_has_no_cycle_no_large_module_and_no_global() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "import_graph.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "pipeline" in run.stdout and "no import cycle" in run.stdout


def test_a_cycle_is_found() -> None:
    edges = {"core": set(), "logs": {"core"}, "pipeline": {"logs", "core"}, "providers": {"pipeline"}}
    assert import_graph.find_cycle(edges) is None
    edges["logs"].add("providers")
    assert import_graph.find_cycle(edges) == ["logs", "providers", "pipeline", "logs"]


def test_nodes_are_the_packages_below_app() -> None:
    assert import_graph.node_of("app.pipeline.run") == "pipeline"
    assert import_graph.node_of("app.main") == "main"
    assert import_graph.node_of("fastapi") is None

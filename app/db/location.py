"""Where a database URL points, said plainly: every `aigw` command prints it, since a relative
SQLite path (the default `./data/aigw.db`) follows the current directory."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url


def sqlite_file(url: str) -> Path | None:
    """The absolute path of a SQLite file URL; None for other databases and `:memory:`."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser().resolve()


def describe(url: str) -> str:
    """`SQLite file /abs/path/aigw.db` or the URL without its password."""
    path = sqlite_file(url)
    if path is not None:
        return f"SQLite file {path}" + ("" if path.exists() else " (not created yet)")
    return make_url(url).render_as_string(hide_password=True)


def missing_sqlite_file(url: str) -> Path | None:
    """The SQLite file a read-only command would have to create, if it does not exist."""
    path = sqlite_file(url)
    return path if path is not None and not path.exists() else None

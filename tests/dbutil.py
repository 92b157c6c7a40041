"""Which database the tests run on: SQLite files (the default) or PostgreSQL.

`MAILLIST_TEST_BACKEND=postgresql` runs the whole suite on a throwaway PostgreSQL cluster
(tests/pgserver.py, started once per session by conftest.py). Tests keep naming their databases
by path (`tmp_path / "m.db"`); `location(path)` is what `--db` gets for it: the path itself, or a
fresh PostgreSQL database made for that path on first use. `connect(path)` opens it for a test
that looks at rows itself, `dump(path)` lists every row of every table."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from maillist.db.postgres import PgConn
from maillist.db.postgres import connect as pg_connect
from pgserver import PgCluster

BACKEND = os.environ.get("MAILLIST_TEST_BACKEND", "sqlite")
POSTGRES = BACKEND == "postgresql"

sqlite_only = pytest.mark.skipif(
    POSTGRES, reason="about the SQLite file itself (its permissions, WAL, PRAGMAs, old versions)"
)


@dataclass
class Databases:
    cluster: PgCluster | None = None
    urls: dict[Path, str] = field(default_factory=dict)


DATABASES = Databases()  # set up by conftest's session fixture when POSTGRES


def location(path: Path | str) -> str:
    """What `--db` (and `open_store`) gets for the database a test calls `path`."""
    if not POSTGRES or str(path).startswith("postgresql://"):
        return str(path)
    key = Path(path).resolve()
    url = DATABASES.urls.get(key)
    if url is None:
        assert DATABASES.cluster is not None, "conftest starts the cluster for this backend"
        url = DATABASES.cluster.new_database()
        DATABASES.urls[key] = url
    return url


def exists(path: Path) -> bool:
    """Whether maillist has made a database there (a schema in PostgreSQL's case)."""
    if not POSTGRES:
        return path.exists()
    conn = pg_connect(location(path))
    try:
        row = conn.execute("SELECT to_regclass('maillist_schema') IS NOT NULL").fetchone()
        return bool(row[0])
    finally:
        conn.close()


class _PgTestConn:
    """A sqlite3-like connection for tests: execute, executemany, commit, close."""

    def __init__(self, conn: PgConn) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Any = (), /) -> Any:
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, rows: Any, /) -> Any:
        return self._conn.executemany(sql, rows)

    def commit(self) -> None:
        """Autocommit: each statement is already committed."""

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> _PgTestConn:
        return self

    def __exit__(self, *exc: object) -> None:
        """As sqlite3's: the end of a `with` block commits (here each statement already has)."""


def connect(path: Path | str) -> Any:
    """The test's own connection to the database at `path` (each statement commits)."""
    if POSTGRES or str(path).startswith("postgresql://"):
        return _PgTestConn(pg_connect(location(path)))
    return sqlite3.connect(path, timeout=10)


def dump(path: Path) -> list[str]:
    """Every row of every table, to prove a failed command changed nothing."""
    if not POSTGRES:
        conn = sqlite3.connect(path)
        try:
            return list(conn.iterdump())
        finally:
            conn.close()
    return dump_url(location(path))


def dump_url(url: str) -> list[str]:
    """Every row of every table of a PostgreSQL database."""
    pg = pg_connect(url)
    try:
        tables = [
            r[0]
            for r in pg.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall()
        ]
        out: list[str] = []
        for table in tables:
            rows = pg.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()
            out += [f"{table}: {row!r}" for row in rows]
        return out
    finally:
        pg.close()

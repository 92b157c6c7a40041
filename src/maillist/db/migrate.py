"""Numbered migrations (db/migrations/NNNN_name.sql) tracked in PRAGMA user_version.

Each migration and its version bump commit together, so a crash leaves the file at one version or
the next, never between. A database from an older maillist is upgraded when opened."""

from __future__ import annotations

import re
import sqlite3
from importlib import resources

from maillist.errors import StoreError

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def available(package: str = "maillist.db.migrations", first: int = 1) -> list[tuple[int, str]]:
    """(version, sql) for every migration shipped with this maillist, in order. PostgreSQL's
    set (db/pgmigrations) starts at the SQLite version its first file brings it level with."""
    found = []
    for entry in resources.files(package).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    found.sort()
    for expected, (version, _) in enumerate(found, start=first):
        if version != expected:
            raise StoreError(f"migration {expected:04d} is missing from this installation")
    return found


def latest() -> int:
    return len(available())


def current_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0]) if row else 0


def upgrade(conn: sqlite3.Connection, target: int | None = None) -> int:
    migrations = available()
    newest = len(migrations) if target is None else target
    version = current_version(conn)
    if version > len(migrations):
        raise StoreError(
            f"database schema version {version} is newer than this maillist supports "
            f"({len(migrations)}); upgrade maillist"
        )
    if version >= newest:
        return version
    # Foreign keys off while tables are rebuilt (a DROP TABLE would otherwise cascade into the
    # rows that reference it); every key is checked before each commit instead. The pragma is a
    # no-op inside a transaction, so it is set around them.
    row = conn.execute("PRAGMA foreign_keys").fetchone()
    enforced = bool(row and row[0])
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        for number, sql in migrations[version:newest]:
            _apply(conn, number, sql)
    finally:
        if enforced:
            conn.execute("PRAGMA foreign_keys = ON")
    return current_version(conn)


def _apply(conn: sqlite3.Connection, number: int, sql: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        # executescript would COMMIT on its own; run statement by statement inside our transaction.
        for statement in _statements(sql):
            conn.execute(statement)
        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise StoreError(
                f"migration {number:04d} would leave {len(broken)} broken reference(s), "
                f"first in table {broken[0][0]}; the database is unchanged"
            )
        conn.execute(f"PRAGMA user_version = {number:d}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _statements(sql: str) -> list[str]:
    """Split a migration into complete statements (sqlite3 decides, so triggers and ';' in strings work)."""
    statements: list[str] = []
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        not part.strip() or part.lstrip().startswith("--") for part in buffer.splitlines()
    ):
        raise StoreError("a migration ends with an incomplete SQL statement")
    return statements

"""What a db/ module asks when the two engines need different SQL: which one holds `conn`."""

from __future__ import annotations

import sqlite3
import zlib

from maillist.db.store import Conn


def postgres(conn: Conn) -> bool:
    return not isinstance(conn, sqlite3.Connection)


def skip_locked(conn: Conn) -> str:
    """Appended to a claim's SELECT: on PostgreSQL rows another process holds are passed over
    (and those taken stay locked until this transaction ends); SQLite has one writer at a time."""
    return " FOR UPDATE SKIP LOCKED" if postgres(conn) else ""


def exclusive(conn: Conn, name: str) -> None:
    """Serialise this transaction with every other one that names the same thing (PostgreSQL's
    transaction-level advisory lock); SQLite's single writer already does."""
    if postgres(conn):
        conn.execute("SELECT pg_advisory_xact_lock(?)", (zlib.crc32(name.encode()),))


def try_exclusive(conn: Conn, name: str) -> bool:
    """Like `exclusive`, without waiting: False if another transaction holds it now."""
    if not postgres(conn):
        return True
    row = conn.execute("SELECT pg_try_advisory_xact_lock(?)", (zlib.crc32(name.encode()),))
    return bool(row.fetchone()[0])

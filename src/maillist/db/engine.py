"""What a db/ module asks when the two engines need different SQL: which one holds `conn`."""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterable

from maillist.db.postgres import OWNER_LOCKS, PgConn
from maillist.db.store import Conn


def postgres(conn: Conn) -> bool:
    return not isinstance(conn, sqlite3.Connection)


def skip_locked(conn: Conn) -> str:
    """Appended to a claim's SELECT: on PostgreSQL rows another process holds are passed over
    (and those taken stay locked until this transaction ends); SQLite has one writer at a time."""
    return " FOR UPDATE SKIP LOCKED" if postgres(conn) else ""


def owner(conn: Conn) -> int:
    """This process's number on the batches it claims (PostgreSQL; 0 on SQLite)."""
    return conn.owner if isinstance(conn, PgConn) else 0


def dead_owners(conn: Conn, owners: Iterable[int]) -> list[int]:
    """Of these claim owners, the processes that are gone: their advisory lock is free (the
    database ends a dead process's session, and its locks with it)."""
    gone = []
    for number in owners:
        if number in {0, owner(conn)}:
            continue
        row = conn.execute("SELECT pg_try_advisory_lock(?, ?)", (OWNER_LOCKS, number)).fetchone()
        if row[0]:
            conn.execute("SELECT pg_advisory_unlock(?, ?)", (OWNER_LOCKS, number))
            gone.append(number)
    return gone


def for_update(conn: Conn) -> str:
    """Appended to a SELECT whose rows the transaction goes on to change (PostgreSQL)."""
    return " FOR UPDATE" if postgres(conn) else ""


def exclusive(conn: Conn, name: str) -> None:
    """Serialise this transaction with every other one that names the same thing (PostgreSQL's
    transaction-level advisory lock); SQLite's single writer already does."""
    if postgres(conn):
        conn.execute("SELECT pg_advisory_xact_lock(?)", (zlib.crc32(name.encode()),))

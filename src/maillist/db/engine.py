"""What a db/ module asks when the two engines need different SQL: which one holds `conn`."""

from __future__ import annotations

import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from maillist.db.store import Conn
from maillist.errors import StoreTimeout

OWNER_LOCKS = 0x6D6C  # advisory locks (class, owner): held by each process while it lives


def postgres(conn: Conn) -> bool:
    return not isinstance(conn, sqlite3.Connection)


def defer(conn: Conn, sql: str, params: Sequence[Any] = ()) -> None:
    """A write whose result nobody reads: on PostgreSQL it goes with the transaction's next
    statement or its COMMIT, not in a round trip of its own (a failure fails that statement, in
    the same transaction and savepoint); on SQLite it runs now."""
    if postgres(conn):
        conn.defer(sql, params)  # type: ignore[attr-defined]  # a PgConn's
    else:
        conn.execute(sql, params)


def insert(conn: Conn, table: str, columns: Sequence[str], values: Sequence[Any]) -> int:
    """INSERT one row into `table` (a name from the code, never from input) and return its id.
    On PostgreSQL the id is taken ahead from the table's sequence (several at a time) and the
    INSERT deferred with it, so a new thread and its first post cost no round trip of their
    own; on SQLite RETURNING is a C call."""
    names = ", ".join(columns)
    marks = ", ".join("?" * len(columns))
    if postgres(conn):
        row_id = int(conn.reserve(table))  # type: ignore[attr-defined]  # a PgConn's
        sql = f"INSERT INTO {table} (id, {names}) VALUES (?, {marks})"
        conn.defer(sql, (row_id, *values))  # type: ignore[attr-defined]
        return row_id
    sql = f"INSERT INTO {table} ({names}) VALUES ({marks}) RETURNING id"
    return int(conn.execute(sql, values).fetchone()[0])


def skip_locked(conn: Conn) -> str:
    """Appended to a claim's SELECT: on PostgreSQL rows another process holds are passed over
    (and those taken stay locked until this transaction ends); SQLite has one writer at a time."""
    return " FOR UPDATE SKIP LOCKED" if postgres(conn) else ""


def owner(conn: Conn) -> int:
    """This process's number on the batches it claims (PostgreSQL; 0 on SQLite)."""
    number = getattr(conn, "owner", 0)  # a PgConn's; imported here, psycopg would load
    return int(number) if postgres(conn) else 0


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


@contextmanager
def time_limit(conn: Conn, seconds: float) -> Iterator[None]:
    """Statements inside are stopped past `seconds` (they raise StoreTimeout): a search a
    stranger typed must not hold the reader for long. SQLite: a progress handler that
    interrupts; PostgreSQL: the transaction's statement_timeout."""
    if postgres(conn):
        conn.execute(f"SET LOCAL statement_timeout = {int(seconds * 1000)}")
        try:
            yield
        except Exception as exc:
            if type(exc).__name__ == "QueryCanceled":
                raise StoreTimeout(f"over its {seconds:g} s budget") from None
            raise
        return
    assert isinstance(conn, sqlite3.Connection)
    until = time.monotonic() + seconds
    conn.set_progress_handler(lambda: int(time.monotonic() > until), 10_000)
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            raise StoreTimeout(f"over its {seconds:g} s budget") from None
        raise
    finally:
        conn.set_progress_handler(None, 0)

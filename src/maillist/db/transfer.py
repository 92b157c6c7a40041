"""SQL for copying a whole database to another engine and comparing two databases: the tables in
the order their references allow, rows read in key order, and a checksum per table that does
not depend on the engine (each row's values in one canonical form, hashed; the hashes summed,
so the order rows come back in does not matter)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

from maillist.db import engine
from maillist.db.store import Conn

# Referenced tables before the tables that reference them. `messages.parent_id` points at rows
# of its own table, in any order: it is written after all messages are (see `restore_parents`).
TABLES = (
    "site", "lists", "people", "badges", "badge_grants", "subscriptions", "audit_log", "threads",
    "messages", "held_messages", "outbound_jobs", "outbound_batches", "delivery_failures",
    "sent_copies", "requests", "notices_sent", "bounces", "dkim_keys", "sign_ins",
    "digest_queue", "digests", "search",
)  # fmt: skip
_SEARCH_COLUMNS = ("rowid", "subject", "body", "author")
CHUNK = 500
_MODULUS = 2**256


def columns(conn: Conn, table: str) -> tuple[str, ...]:
    """The table's columns, in their declared order (the full-text table: what both share)."""
    if table == "search":
        return _SEARCH_COLUMNS
    if engine.postgres(conn):
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            (table,),
        ).fetchall()
    else:
        rows = [(r[1],) for r in conn.execute(f"PRAGMA table_info({_known(table)})").fetchall()]
    return tuple(str(r[0]) for r in rows)


def count(conn: Conn, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {_known(table)}").fetchone()[0])


def rows(conn: Conn, table: str, names: Sequence[str]) -> Iterator[list[tuple[Any, ...]]]:
    """The table's rows, `CHUNK` at a time, by key (SQLite's rowid, PostgreSQL's ctid order is
    not stable, so a keyset on the first column where it is the key, else one pass)."""
    select = ", ".join(names)
    if names[0] in {"id", "rowid"}:
        last = -1
        while True:
            chunk = conn.execute(
                f"SELECT {select} FROM {_known(table)} WHERE {names[0]} > ? "
                f"ORDER BY {names[0]} LIMIT ?",
                (last, CHUNK),
            ).fetchall()
            if not chunk:
                return
            yield [tuple(r) for r in chunk]
            last = int(chunk[-1][0])
    cur = conn.execute(f"SELECT {select} FROM {_known(table)}")
    while chunk := cur.fetchmany(CHUNK):
        yield [tuple(r) for r in chunk]


def insert(conn: Conn, table: str, names: Sequence[str], chunk: Sequence[tuple[Any, ...]]) -> None:
    values = [tuple(_parentless(table, names, r)) for r in chunk]
    conn.executemany(
        f"INSERT INTO {_known(table)} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
        values,
    )


def _parentless(table: str, names: Sequence[str], row: tuple[Any, ...]) -> tuple[Any, ...]:
    if table != "messages":
        return row
    at = names.index("parent_id")
    return (*row[:at], None, *row[at + 1 :])


def parents(conn: Conn) -> Iterator[list[tuple[int, int]]]:
    """(row, parent row) of every message that has a parent, `CHUNK` at a time."""
    last = -1
    while True:
        chunk = conn.execute(
            "SELECT id, parent_id FROM messages WHERE parent_id IS NOT NULL AND id > ? "
            "ORDER BY id LIMIT ?",
            (last, CHUNK),
        ).fetchall()
        if not chunk:
            return
        yield [(int(r[0]), int(r[1])) for r in chunk]
        last = int(chunk[-1][0])


def restore_parents(conn: Conn, pairs: Sequence[tuple[int, int]]) -> None:
    conn.executemany("UPDATE messages SET parent_id = ? WHERE id = ?", [(p, r) for r, p in pairs])


def empty(conn: Conn) -> None:
    """What a new database holds before a copy arrives: its own site secret."""
    conn.execute("DELETE FROM site")


def restart_keys(conn: Conn) -> None:
    """After rows arrived with their ids: PostgreSQL's identity columns continue after them."""
    if not engine.postgres(conn):
        return
    for table in TABLES:
        if table != "search" and "id" in columns(conn, table):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {_known(table)}), 0) + 1, false)"
            )


def occupied(conn: Conn) -> list[tuple[str, int]]:
    """Tables of a target that already hold rows (a new database has its site secret only)."""
    return [(t, n) for t in TABLES if t != "site" and (n := count(conn, t))]


def checksum(conn: Conn, table: str, names: Sequence[str]) -> tuple[int, str]:
    """(rows, checksum) of the table, the same for the same rows in either engine."""
    total = 0
    n = 0
    for chunk in rows(conn, table, names):
        for row in chunk:
            digest = hashlib.sha256(repr(tuple(_canonical(v) for v in row)).encode()).digest()
            total = (total + int.from_bytes(digest, "big")) % _MODULUS
            n += 1
    return n, f"{total:064x}"[:16]


def _canonical(value: object) -> object:
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _known(table: str) -> str:
    if table not in TABLES:  # table names are interpolated: known names only
        raise ValueError(table)
    return table

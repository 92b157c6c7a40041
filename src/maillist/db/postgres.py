"""The PostgreSQL store: the same four ways in as the SQLite store, over psycopg 3.

db/ modules are written once, in SQL both engines read; what differs is spelled here, once:
`?` placeholders become `%s` (client-side binding, so an untyped parameter is a literal PostgreSQL
types from its context, as SQLite does), `char()`/`instr()` become `chr()`/`strpos()`, booleans
go as 0/1 (flags are integers in both schemas). The few statements that cannot be shared (full-text
search, row locks, advisory locks) ask db/engine.py.

Transactions: one writer connection (the store's write lock keeps one transaction at a time in
this process, as on SQLite) and one reader (REPEATABLE READ, READ ONLY: one committed state, like
a WAL snapshot). `synchronous_commit` stays on for durable writes, so COMMIT returns only once the
WAL is flushed and the 250 still means "on disk"; `durable=False` writes set it off for their
own transaction. Other processes may hold row locks: `lock_timeout` bounds every wait, and the
errors two processes can cause each other (a unique key taken meanwhile, a deadlock, a lock
timeout) become `StoreConflict`, which callers that can redo their transaction retry."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import psycopg.errors

from maillist import config
from maillist.db import migrate
from maillist.db.engine import OWNER_LOCKS
from maillist.db.store import Conn, Store
from maillist.errors import StoreBusy, StoreConflict, StoreError

T = TypeVar("T")
log = logging.getLogger("maillist.store")

LOCK_TIMEOUT_MS = 10_000
READ_SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
_CONFLICTS = (
    psycopg.errors.UniqueViolation,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
)


_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?|%|\bchar\(|\binstr\(")
_SPELLING = {"?": "%s", "%": "%%", "char(": "chr(", "instr(": "strpos("}


@lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """SQLite spelling -> PostgreSQL spelling. Quoted literals keep their text; a `%` in them
    is doubled all the same (psycopg reads every `%` of a query with parameters)."""
    return _PLACEHOLDER.sub(lambda m: _SPELLING.get(m.group(0), _literal(m.group(0))), sql)


def _literal(text: str) -> str:
    return text.replace("%", "%%")


def _value(value: object) -> object:
    if value is True or value is False:
        return int(value)
    if isinstance(value, str) and "\x00" in value:  # text cannot hold NUL in PostgreSQL
        return value.replace("\x00", "\ufffd")
    return value


def _params(params: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(_value(v) for v in params)


BULKY = 64 * 1024


def _bulky(values: tuple[Any, ...]) -> bool:
    return any(isinstance(v, bytes | bytearray | memoryview) and len(v) > BULKY for v in values)


class Cursor:
    """The part of sqlite3.Cursor db/ modules use."""

    def __init__(self, cur: psycopg.Cursor[Any] | None, rowcount: int = -1) -> None:
        self._cur = cur
        self.rowcount = cur.rowcount if cur is not None else rowcount

    def fetchone(self) -> Any:
        return self._cur.fetchone() if self._cur is not None and self._cur.description else None

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall() if self._cur is not None and self._cur.description else []

    def fetchmany(self, size: int = 1, /) -> list[Any]:
        return self._cur.fetchmany(size) if self._cur is not None and self._cur.description else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConn:
    """A psycopg connection shaped like the sqlite3 connection db/ modules were written for."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw
        self.owner = 0  # the writer's: this process's number on the claims it takes

    @property
    def usable(self) -> bool:
        return not (self.raw.closed or self.raw.broken)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor:
        if sql == "ROLLBACK" and not self.usable:  # the session is gone, and its transaction
            return Cursor(None, 0)
        values = _params(params)
        with _errors():
            # A large bytea (a 10 MB post) as a quoted literal is a hex text twice its size,
            # built in Python and copied again: such statements bind server-side instead,
            # where the bytes go as they are (their columns give every parameter its type).
            cur = psycopg.Cursor(self.raw) if _bulky(values) else self.raw.cursor()
            cur.execute(translate(sql), values)
            return Cursor(cur)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Cursor:
        with _errors():
            cur = self.raw.cursor()
            cur.executemany(translate(sql), [_params(r) for r in rows])
            return Cursor(None, cur.rowcount)

    def close(self) -> None:
        self.raw.close()


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except _CONFLICTS as exc:
        raise StoreConflict(f"another process changed the same rows: {_first_line(exc)}") from exc
    except psycopg.errors.LockNotAvailable as exc:
        raise StoreBusy(f"rows locked for over {LOCK_TIMEOUT_MS // 1000} s") from exc
    except psycopg.OperationalError as exc:
        raise StoreError(f"database connection failed: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(url: str, *, read_only: bool = False) -> PgConn:
    try:
        raw = psycopg.connect(
            url, autocommit=True, cursor_factory=psycopg.ClientCursor, connect_timeout=10
        )
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to {config.describe(url)}: {_first_line(exc)}") from None
    conn = PgConn(raw)
    conn.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS:d}")
    conn.execute("SET synchronous_commit = on")
    conn.execute("SET client_encoding = 'UTF8'")
    if read_only:
        conn.execute("SET default_transaction_read_only = on")
    return conn


def begin_write(conn: PgConn, durable: bool) -> None:
    conn.execute("BEGIN")
    if not durable:
        conn.execute("SET LOCAL synchronous_commit = off")


def in_transaction(conn: PgConn, fn: Callable[[Conn], T], durable: bool) -> T:
    """In the writer thread: BEGIN, `fn(conn)`, COMMIT (ROLLBACK on any error)."""
    begin_write(conn, durable)
    try:
        result = fn(conn)
    except BaseException:
        _rollback(conn)
        raise
    with _errors():
        conn.raw.execute("COMMIT")
    return result


def _rollback(conn: PgConn) -> None:
    if not conn.raw.closed:
        conn.raw.execute("ROLLBACK")


MIGRATIONS = "maillist.db.pgmigrations"
FIRST_VERSION = 11  # the first PostgreSQL migration brings a database level with SQLite's 0011
_MIGRATE_LOCK = 0x6D61696C6C697374  # pg_advisory_lock key: 'maillist'


def current_version(conn: PgConn) -> int:
    row = conn.execute("SELECT to_regclass('maillist_schema') IS NOT NULL").fetchone()
    if not row[0]:
        return 0
    row = conn.execute("SELECT version FROM maillist_schema").fetchone()
    return int(row[0]) if row else 0


def latest() -> int:
    return migrate.available(MIGRATIONS, FIRST_VERSION)[-1][0]


def upgrade(conn: PgConn, target: int | None = None) -> int:
    """Apply the PostgreSQL migrations not yet applied, each in its own transaction, under an
    advisory lock: several processes starting at once upgrade the database once."""
    migrations = migrate.available(MIGRATIONS, FIRST_VERSION)
    newest = migrations[-1][0] if target is None else target
    if newest < FIRST_VERSION:
        raise StoreError(f"PostgreSQL schemas start at version {FIRST_VERSION}")
    conn.execute("SELECT pg_advisory_lock(?)", (_MIGRATE_LOCK,))
    try:
        version = current_version(conn)
        if version > migrations[-1][0]:
            raise StoreError(
                f"database schema version {version} is newer than this maillist supports "
                f"({migrations[-1][0]}); upgrade maillist"
            )
        for number, sql in migrations:
            if version < number <= newest:
                conn.execute("BEGIN")
                try:
                    with _errors():
                        conn.raw.execute(sql.encode())  # several statements, no parameters
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS maillist_schema (version BIGINT NOT NULL)"
                    )
                    conn.execute("DELETE FROM maillist_schema")
                    conn.execute("INSERT INTO maillist_schema (version) VALUES (?)", (number,))
                except BaseException:
                    _rollback(conn)
                    raise
                commit(conn)
        return current_version(conn)
    finally:
        conn.execute("SELECT pg_advisory_unlock(?)", (_MIGRATE_LOCK,))


def commit(conn: PgConn) -> None:
    with _errors():
        conn.raw.execute("COMMIT")


class PgStore(Store):
    """Store's write lock, queues and threads; PostgreSQL's transactions."""

    READ_BEGIN = READ_SNAPSHOT
    OFF_LOOP = True  # every statement is a network round trip: never on the event loop

    @staticmethod
    def _connect(
        path: Path | str, create: bool, migrate_to: int | None, cache_kib: int
    ) -> tuple[Any, Any]:
        return _open(str(path), create, migrate_to)

    def describe(self) -> str:
        return config.describe(str(self.path))

    def _version(self, conn: Any) -> int:
        return current_version(conn)

    async def _ensure_writer(self) -> None:
        if not self._writer.usable:
            await self._call(self._reconnect_writer)

    async def _ensure_reader(self) -> None:
        if not self._reader.usable:
            await asyncio.get_running_loop().run_in_executor(
                self._read_executor, self._reconnect_reader
            )

    def _reconnect_writer(self) -> None:
        """The server restarted or dropped the session (a failover, an admin's terminate): a
        new session, under this process's own claim number again."""
        if self._writer.usable:
            return
        log.warning("database connection lost; connecting again to %s", self.describe())
        fresh = connect(str(self.path))
        fresh.owner = self._writer.owner
        fresh.execute("SELECT pg_advisory_lock(?, ?)", (OWNER_LOCKS, fresh.owner))
        self._writer.close()
        self._writer = fresh

    def _reconnect_reader(self) -> None:
        if not self._reader.usable:
            self._reader.close()
            self._reader = connect(str(self.path), read_only=True)

    async def _begin(self, conn: Any, durable: bool) -> None:
        begin_write(conn, durable)

    def _commit(self, conn: Any) -> None:
        commit(conn)

    def _after(self, conn: Any, durable: bool) -> None:
        pass

    def _in_transaction(self, conn: Any, fn: Callable[[Conn], T], durable: bool) -> T:
        return in_transaction(conn, fn, durable)


def _open(url: str, create: bool, migrate_to: int | None) -> tuple[PgConn, PgConn]:
    writer = connect(url)
    try:
        if not create and current_version(writer) == 0:
            raise StoreError(
                f"no database at {config.describe(url)} (it holds no maillist schema: create a list with "
                "`maillist lists create`, or point --db / MAILLIST_DB at your database)"
            )
        upgrade(writer, migrate_to)
        writer.owner = secrets.randbits(31) + 1
        writer.execute("SELECT pg_advisory_lock(?, ?)", (OWNER_LOCKS, writer.owner))
        reader = connect(url, read_only=True)
    except BaseException:
        writer.close()
        raise
    return writer, reader

"""The PostgreSQL store: the same ways in as the SQLite store, over psycopg 3.

db/ modules are written once, in SQL both engines read; what differs is spelled here, once:
`?` placeholders become `$1, $2, ...` (server-side binding: a string goes as an untyped value
PostgreSQL types from its context, as SQLite does), `char()`/`instr()` become `chr()`/`strpos()`,
booleans go as 0/1 (flags are integers in both schemas). The few statements that cannot be shared
(full-text search, row locks, advisory locks) ask db/engine.py.

Statements: each is one libpq call (psycopg.pq) with psycopg's own adapters (psycopg.adapt:
Python values to PostgreSQL's and back, in C), not psycopg's cursors: a store statement then
costs the process about a fifth of the CPU, which on a busy server is the difference that
matters (bench/scale.py). A statement run a second time is prepared, so PostgreSQL plans it once
per session. Parameters go in psycopg's own formats (a bytea, a 10 MB post, as its bytes, not as
hex text); results come back as text, so a type psycopg has no loader for (citext) is a str.

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
import select
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

from maillist import config
from maillist.db import migrate
from maillist.db.engine import OWNER_LOCKS
from maillist.db.store import Conn, Store
from maillist.errors import StoreBusy, StoreConflict, StoreError

T = TypeVar("T")
log = logging.getLogger("maillist.store")

LOCK_TIMEOUT_MS = 10_000
READ_SNAPSHOT = b"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
_CONFLICTS = (
    psycopg.errors.UniqueViolation,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
)


_SPELLING = re.compile(r"'(?:[^']|'')*'|\?|\bchar\(|\binstr\(")
_FUNCTIONS = {"char(": "chr(", "instr(": "strpos("}


@lru_cache(maxsize=1024)
def translate(sql: str) -> bytes:
    """SQLite spelling -> PostgreSQL spelling, encoded. Quoted literals keep their text."""
    numbers = iter(range(1, sql.count("?") + 1))

    def spell(match: re.Match[str]) -> str:
        word = match.group(0)
        if word == "?":
            return f"${next(numbers)}"
        return _FUNCTIONS.get(word, word)

    return _SPELLING.sub(spell, sql).encode()


def _value(value: object) -> object:
    if value is True or value is False:
        return int(value)
    if isinstance(value, str) and "\x00" in value:  # text cannot hold NUL in PostgreSQL
        return value.replace("\x00", "\ufffd")
    return value


_DONE = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.EMPTY_QUERY)


class Cursor:
    """The part of sqlite3.Cursor db/ modules use, over one statement's result: its rows are
    turned into Python values as they are fetched."""

    def __init__(self, result: pq.abc.PGresult | None, context: psycopg.Connection[Any]) -> None:
        self._result = result if result is not None and result.nfields else None
        self._context = context
        self._loader: Any = None  # a psycopg.adapt.Transformer, made when rows are fetched
        self._next = 0
        tuples = result.command_tuples if result is not None else None
        self.rowcount = tuples if tuples is not None else -1

    def _rows(self, count: int) -> list[Any]:
        result = self._result
        if result is None:
            return []
        end = min(result.ntuples, self._next + count)
        if end <= self._next:
            return []
        if self._loader is None:
            self._loader = Transformer(self._context)
            self._loader.set_pgresult(result)
        rows: list[Any] = self._loader.load_rows(self._next, end, tuple)
        self._next = end
        return rows

    def fetchone(self) -> Any:
        rows = self._rows(1)
        return rows[0] if rows else None

    def fetchall(self) -> list[Any]:
        return self._rows(self._result.ntuples if self._result is not None else 0)

    def fetchmany(self, size: int = 1, /) -> list[Any]:
        return self._rows(size)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


PREPARE_AFTER = 2  # runs of the same statement (with the same parameter types)
MAX_PREPARED = 512  # per session; the hot statements are prepared long before this fills


PIPELINE = 256  # statements sent before waiting for their results (executemany)
RESERVE = 64  # ids taken from a sequence at once (PgConn.reserve)

Command = tuple[bytes | None, bytes, Sequence[Any], Sequence[int], Sequence[pq.Format]]


class PgConn:
    """A PostgreSQL session shaped like the sqlite3 connection db/ modules were written for.

    Round trips are what a PostgreSQL transaction costs (on another machine, each is a network
    wait), so what need not wait is not sent on its own: a BEGIN goes in one pipeline with the
    transaction's first statement (a transaction that runs none sends nothing), a write whose
    result nobody reads (`defer`, through db/engine.py) with the next statement or the COMMIT,
    and `executemany` sends its rows in pipelines of PIPELINE statements, one round trip each.
    A deferred write that fails makes the statement it went with fail, inside the same
    transaction (and savepoint), so what rolls back is what would have."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw
        self.owner = 0  # the writer's: this process's number on the claims it takes
        self._dumper = Transformer(raw)
        self._runs: dict[tuple[bytes, tuple[int, ...]], int] = {}
        self._prepared: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        self._begin: list[bytes] = []  # BEGIN and its SET LOCAL, not sent yet
        self._deferred: list[Command] = []  # writes not sent yet (after any BEGIN)
        self._unsent: set[bytes] = set()  # savepoints rolled back before they were sent
        self._ids: dict[str, list[int]] = {}  # ids taken ahead from sequences (reserve)

    @property
    def usable(self) -> bool:
        return not self.raw.closed

    @property
    def in_transaction(self) -> bool:
        waiting = self._begin or self._deferred
        return bool(waiting) or self.raw.pgconn.transaction_status != pq.TransactionStatus.IDLE

    def begin(self, *statements: bytes) -> None:
        """BEGIN (and what goes with it, e.g. SET LOCAL), sent with the next statement."""
        self._begin.extend(statements)

    def reserve(self, table: str) -> int:
        """A new id for a row of `table`, from its sequence: RESERVE at a time, one round trip
        (with whatever is waiting) each. Ids a rolled-back transaction took are skipped, as
        sequences always skip them."""
        ids = self._ids.setdefault(table, [])
        if not ids:
            rows = self.execute(
                "SELECT nextval(pg_get_serial_sequence(?, 'id')) FROM generate_series(1, ?)",
                (table, RESERVE),
            ).fetchall()
            ids.extend(sorted((int(r[0]) for r in rows), reverse=True))
        return ids.pop()

    def defer(self, sql: str, params: Sequence[Any] = ()) -> None:
        """A write whose result is not read, sent with the next statement (or the COMMIT)."""
        with _errors():
            self._deferred.append(self._command(translate(sql), params))

    def end(self, statement: bytes) -> None:
        """COMMIT (with the writes deferred until it) or ROLLBACK; nothing to send when the
        transaction never started."""
        self._unsent.clear()
        if statement == b"COMMIT" and self._deferred:
            with _errors():
                self._pipeline([_plain(statement)])
            return
        started = not self._begin
        self._begin.clear()
        self._deferred.clear()
        if started and (statement == b"COMMIT" or self.usable):
            self.execute(statement.decode())

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor:
        if sql.startswith(("SAVEPOINT ", "RELEASE ", "ROLLBACK")) and self._savepoint(sql):
            return Cursor(None, self.raw)
        with _errors():
            command = self._command(translate(sql), params)
            if self._begin or self._deferred:
                return Cursor(self._pipeline([command])[-1], self.raw)
            name, query, args, types, formats = command
            pgconn = self.raw.pgconn
            if name is not None:
                result = pgconn.exec_prepared(name, args, formats)
            else:
                result = pgconn.exec_params(query, args, types, formats)
            _check(result)
            return Cursor(result, self.raw)

    def _savepoint(self, sql: str) -> bool:
        """Savepoints cost no round trip of their own: True when `sql` is settled here.

        A SAVEPOINT waits (with the statement after it) when no write is waiting, so whatever
        fails in a pipeline that carries it fails inside it. A RELEASE waits when nothing is
        waiting that could fail in its scope, and goes at once otherwise, so that a deferred
        write of the savepoint fails there (db/store.py's savepoint then rolls back to it).
        A ROLLBACK undoes the writes still waiting (they came after the last statement sent,
        so after the savepoint it rolls back to), and a savepoint never sent needs neither
        ROLLBACK TO nor RELEASE."""
        waiting = self._deferred
        name = sql.split()[-1].encode()
        unsent = bool(waiting) and waiting[0][1] == b"SAVEPOINT " + name
        if sql.startswith("SAVEPOINT "):
            if waiting:
                return False
            waiting.append(_plain(sql.encode()))
            return True
        if sql.startswith("RELEASE "):
            if name in self._unsent:
                self._unsent.discard(name)
                return True
            if unsent and len(waiting) == 1:  # nothing happened inside it
                waiting.clear()
                return True
            if waiting:
                return False
            waiting.append(_plain(sql.encode()))
            return True
        waiting.clear()  # ROLLBACK [TO name]
        if sql.startswith("ROLLBACK TO ") and unsent:
            self._unsent.add(name)
            return True
        return not self.usable  # the session is gone, and its transaction

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Cursor:
        query = translate(sql)
        count = 0
        with _errors():
            commands = [self._command(query, row) for row in rows]
            for start in range(0, len(commands), PIPELINE):
                for result in self._pipeline(commands[start : start + PIPELINE]):
                    count += max(result.command_tuples or 0, 0)
        cursor = Cursor(None, self.raw)
        cursor.rowcount = count
        return cursor

    def _command(self, query: bytes, params: Sequence[Any]) -> Command:
        args: Sequence[Any] = ()
        types: Sequence[int] = ()
        formats: Sequence[pq.Format] = ()
        if params:
            values = [_value(v) for v in params]
            args = self._dumper.dump_sequence(values, [PyFormat.AUTO] * len(values))
            types, formats = self._dumper.types or (), self._dumper.formats or ()
        return self._statement(query, types), query, args, types, formats

    def _pipeline(self, commands: Sequence[Command]) -> list[pq.abc.PGresult]:
        """The statements waiting ahead, then `commands`, in one round trip: the results of
        `commands`, or the first error (the statements after it are not run)."""
        pgconn = self.raw.pgconn
        begin, self._begin = self._begin, []
        ahead = [_plain(statement) for statement in begin] + self._deferred
        self._deferred = []
        commands = [*ahead, *commands]
        try:
            pgconn.nonblocking = 1
            pgconn.enter_pipeline_mode()
            for name, query, args, types, formats in commands:
                if name is not None:
                    pgconn.send_query_prepared(name, args, formats)
                else:
                    pgconn.send_query_params(query, args, types, formats)
                _flush(pgconn)
            pgconn.pipeline_sync()
            _flush(pgconn)
            results: list[pq.abc.PGresult] = []
            for _ in commands:
                result = _next_result(pgconn)
                if result is None:
                    raise psycopg.OperationalError("the server closed the connection")
                while _next_result(pgconn) is not None:  # the end of this statement's results
                    pass
                results.append(result)
            _next_result(pgconn)  # the sync point
            pgconn.exit_pipeline_mode()
            pgconn.nonblocking = 0
        except BaseException:
            self.raw.close()  # halfway through a pipeline: the session cannot be trusted
            raise
        for result in results:
            if result.status != pq.ExecStatus.PIPELINE_ABORTED:
                _check(result)  # the first error; the statements after it were not run
        return results[len(ahead) :]

    def _statement(self, query: bytes, types: Sequence[int]) -> bytes | None:
        """The name of the prepared statement for `query` with these parameter types, preparing
        it on its second run; None while it runs unprepared."""
        key = (query, tuple(types))
        name = self._prepared.get(key)
        if name is not None or len(self._prepared) >= MAX_PREPARED:
            return name
        runs = self._runs.get(key, 0) + 1
        if runs < PREPARE_AFTER:
            if len(self._runs) >= 4 * MAX_PREPARED:
                self._runs.clear()
            self._runs[key] = runs
            return None
        name = b"maillist_%d" % len(self._prepared)
        result = self.raw.pgconn.prepare(name, query, key[1])
        if result.status != pq.ExecStatus.COMMAND_OK:  # the statement itself is wrong: said
            return None  # when it runs
        self._runs.pop(key, None)
        self._prepared[key] = name
        return name

    def close(self) -> None:
        self.raw.close()


def _plain(statement: bytes) -> Command:
    """A statement without parameters, never prepared (BEGIN, SAVEPOINT, COMMIT ...)."""
    return None, statement, (), (), ()


def _flush(pgconn: pq.abc.PGconn) -> None:
    """Send what libpq holds, waiting for the socket in select() (which lets other threads run:
    libpq's own blocking waits inside get_result/flush hold Python's GIL, and with it the event
    loop, for a whole round trip)."""
    while pgconn.flush():
        readable, _, _ = select.select([pgconn.socket], [pgconn.socket], [])
        if readable:
            pgconn.consume_input()


def _next_result(pgconn: pq.abc.PGconn) -> pq.abc.PGresult | None:
    while pgconn.is_busy():
        select.select([pgconn.socket], [], [])
        pgconn.consume_input()
    return pgconn.get_result()


def _check(result: pq.abc.PGresult) -> None:
    if result.status not in _DONE:
        raise psycopg.errors.error_from_result(result, encoding="utf-8")


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
        raw = psycopg.connect(url, autocommit=True, connect_timeout=10)
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
    if durable:
        conn.begin(b"BEGIN")
    else:
        conn.begin(b"BEGIN", b"SET LOCAL synchronous_commit = off")


def in_transaction(conn: PgConn, fn: Callable[[Conn], T], durable: bool) -> T:
    """In the writer thread: BEGIN, `fn(conn)`, COMMIT (ROLLBACK on any error)."""
    begin_write(conn, durable)
    try:
        result = fn(conn)
        commit(conn)  # a deferred write that fails, fails here
    except BaseException:
        _rollback(conn)
        raise
    return result


def snapshot(conn: PgConn, fn: Callable[[Conn], T]) -> T:
    """In the reader's thread: `fn(conn)` in one REPEATABLE READ snapshot."""
    conn.begin(READ_SNAPSHOT)
    try:
        return fn(conn)
    finally:
        conn.end(b"COMMIT")


def _rollback(conn: PgConn) -> None:
    conn.end(b"ROLLBACK")


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
    conn.end(b"COMMIT")


class PgStore(Store):
    """Store's write lock, queues and threads; PostgreSQL's transactions."""

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

    def _snapshot(self, conn: Any, fn: Callable[[Conn], T]) -> T:
        return snapshot(conn, fn)


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

"""The store: the one owner of the database, for the CLI and the server alike.

One writer connection and one reader connection. One way in for writes and one for reads:

- `await store.write(fn, durable=..., urgent=..., heavy=...)`: `fn(conn)` as one transaction on
  the writer, one at a time (an asyncio lock, fair; urgent writes first). Where `fn` runs is the
  engine's choice: SQLite runs it on the event loop between a BEGIN IMMEDIATE and a COMMIT that
  run in the writer thread (its statements are C calls, the Python driving them runs on the loop
  anyway: no GIL fight; COMMIT waits for fsync with the GIL released; BEGIN never waits inside
  SQLite, a lock held by another process is retried with asyncio.sleep), or in the writer thread
  when the caller says the work is `heavy` (a slice of a big fan-out); PostgreSQL always in the
  writer thread (each statement is a network round trip). Group commit (services/ingest.py) is
  one write holding many sessions' messages.
- `await store.read(fn, heavy=...)`: `fn(conn)` in a snapshot on the reader connection: in WAL
  mode it never waits for the writer and sees one committed state. On the loop for SQLite, in the
  reader's thread for heavy reads and on PostgreSQL.

`savepoint(conn)` lets a part of a transaction fail alone. `beside` holds two databases at once
(copying a site). db/ functions take the `Conn` they are given; nothing outside db/ runs SQL or
knows the connection's type. The PostgreSQL store (db/postgres.py) is this class with its
transaction statements replaced; `maillist.db.open_store` picks one by location."""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from maillist.db import migrate
from maillist.errors import StoreBusy, StoreError

T = TypeVar("T")


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchmany(self, size: int = ..., /) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """What services hand to db/ functions without using it themselves: a sqlite3 connection,
    or db/postgres.py's connection shaped like one."""

    @property
    def in_transaction(self) -> bool: ...
    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor: ...


@contextmanager
def savepoint(conn: Conn, name: str = "step") -> Iterator[None]:
    """A part of a transaction that may fail alone: on an exception what it did is rolled back
    (the rest of the transaction stays) and the exception goes on to the caller."""
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
        conn.execute(f"RELEASE {name}")  # on PostgreSQL, what was deferred inside fails here
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        raise


LOCK_WAIT_SECONDS = 10.0
SERVER_CACHE_KIB = 8 * 1024
# A 100,000-row import is one transaction; with SQLite's 2 MB default page cache it spills dirty
# pages mid-transaction and runs 8x slower. The cache grows only as used.
BULK_CACHE_KIB = 64 * 1024
PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
)


class _WriteLock:
    """One writer at a time. Waiting urgent writers (sessions waiting for their 250) go before
    waiting background ones (delivery bookkeeping, fan-out slices), each kind in arrival order;
    after URGENT_RUN urgent turns in a row a waiting background writer gets one, so a flood of
    posts slows delivery down but never stops it."""

    URGENT_RUN = 4

    def __init__(self) -> None:
        self._held = False
        self._run = 0
        self._urgent: collections.deque[asyncio.Future[None]] = collections.deque()
        self._background: collections.deque[asyncio.Future[None]] = collections.deque()

    @asynccontextmanager
    async def hold(self, urgent: bool) -> AsyncIterator[None]:
        if self._held or self._urgent or self._background:
            queue = self._urgent if urgent else self._background
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            queue.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # handed over just as we were cancelled: pass it on
                elif waiter in queue:
                    queue.remove(waiter)
                raise
        else:
            self._held = True
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        order = (self._urgent, self._background)
        if self._run >= self.URGENT_RUN:
            order = (self._background, self._urgent)
        for queue in order:
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    self._run = self._run + 1 if queue is self._urgent else 0
                    waiter.set_result(None)  # the lock passes to it directly: stays held
                    return
        self._held = False
        self._run = 0


class Store:
    """The SQLite store; db/postgres.py's PgStore replaces the hooks marked "engine"."""

    OFF_LOOP = False  # engine: whether every transaction's statements run in a thread

    def __init__(
        self, path: Path | str, writer: Any, reader: Any, executor: ThreadPoolExecutor
    ) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._executor = executor
        self._write_lock = _WriteLock()
        self._read_lock = asyncio.Lock()
        self._read_executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="maillist-reader"
        )

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        create: bool = True,
        migrate_to: int | None = None,
        cache_kib: int = BULK_CACHE_KIB,
    ) -> Store:
        """Open the database at `path`, upgraded to the newest schema (or `migrate_to`); with
        `create`, make it (and its directory) if missing. Commands that only read or change what
        exists never create an empty database by mistake."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maillist-writer")
        loop = asyncio.get_running_loop()
        try:
            writer, reader = await loop.run_in_executor(
                executor, partial(cls._connect, path, create, migrate_to, cache_kib)
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(path, writer, reader, executor)

    @staticmethod
    def _connect(
        path: Path | str, create: bool, migrate_to: int | None, cache_kib: int
    ) -> tuple[Any, Any]:
        """engine: the writer and reader connections, the schema upgraded (in the writer thread)."""
        return _connect(Path(path), create, migrate_to, cache_kib)

    def describe(self) -> str:
        """Where the data is, for messages (no password)."""
        return str(self.path)

    async def close(self) -> None:
        async with self._write_lock.hold(urgent=False):
            await self._call(self._writer.close)
        async with self._read_lock:
            self._read_executor.shutdown(wait=True)
            self._reader.close()
        self._executor.shutdown(wait=True)

    async def write(
        self,
        fn: Callable[[Conn], T],
        *,
        durable: bool = True,
        urgent: bool = False,
        heavy: bool = False,
    ) -> T:
        """`fn(conn)` as one write transaction; returns what it returns, after the COMMIT. Where
        `fn` runs is the engine's choice: SQLite runs it on the event loop, between a BEGIN and
        a COMMIT that run in the writer thread (its statements are C calls: no GIL to fight
        over), or, when the caller says the work is `heavy` (a slice of a big fan-out, a
        digest), in the writer thread; PostgreSQL always in the writer thread (each statement
        waits for a network round trip, which must never hold the loop). `durable=False`: see
        `_writing`. `urgent` writes (a session waits for their commit) go before background
        ones. `fn` runs once; it raises to roll back."""
        if heavy or self.OFF_LOOP:
            async with self._write_lock.hold(urgent):
                await self._ensure_writer()
                return await self._call(partial(self._in_transaction, self._writer, fn, durable))
        async with self._writing(durable=durable, urgent=urgent) as conn:
            return fn(conn)

    async def read(self, fn: Callable[[Conn], T], *, heavy: bool = False) -> T:
        """`fn(conn)` in a snapshot on the reader connection (it never waits for the writer):
        on the loop for SQLite, in the reader's thread for a `heavy` read (a search, planning a
        slice of fan-out) or on PostgreSQL."""
        if heavy or self.OFF_LOOP:
            async with self._read_lock:
                await self._ensure_reader()
                return await asyncio.get_running_loop().run_in_executor(
                    self._read_executor, partial(self._snapshot, self._reader, fn)
                )
        async with self._reading() as conn:
            return fn(conn)

    async def beside(
        self, other: Store, fn: Callable[[Conn, Conn], T], *, write_other: bool = False
    ) -> T:
        """`fn(this, that)`: a snapshot of this database beside a snapshot of `other` (or, with
        `write_other`, one write transaction on it), in a thread: copying or comparing two
        sites (`maillist db migrate`, `db check`), the only work that needs two at once."""
        async with self._read_lock:
            await self._ensure_reader()
            if write_other:
                async with other._write_lock.hold(urgent=False):
                    await other._ensure_writer()

                    def both(this: Conn) -> T:
                        return other._in_transaction(
                            other._writer, lambda that: fn(this, that), durable=True
                        )

                    return await asyncio.to_thread(self._snapshot, self._reader, both)
            async with other._read_lock:
                await other._ensure_reader()

                def pair(this: Conn) -> T:
                    return other._snapshot(other._reader, lambda that: fn(this, that))

                return await asyncio.to_thread(self._snapshot, self._reader, pair)

    @asynccontextmanager
    async def _writing(self, *, durable: bool, urgent: bool) -> AsyncIterator[Conn]:
        """SQLite's write on the loop: BEGIN IMMEDIATE (retried, never waiting inside SQLite),
        the statements on the caller's thread, COMMIT (the fsync) in the writer thread.
        `durable=False` is for writes a crash may take back without harm, because what they
        record is redone or reset at start-up (a claim, a slice of fan-out with its cursor):
        their COMMIT skips the fsync, and the next durable commit's fsync covers them."""
        async with self._write_lock.hold(urgent):
            await self._ensure_writer()
            conn = self._writer
            try:
                await self._begin(conn, durable)
                try:
                    yield conn
                except BaseException:
                    await self._call(partial(conn.execute, "ROLLBACK"))
                    raise
                try:
                    await self._call(partial(self._commit, conn))
                except BaseException:
                    if conn.in_transaction:
                        await self._call(partial(conn.execute, "ROLLBACK"))
                    raise
            finally:
                self._after(conn, durable)

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[Conn]:
        async with self._read_lock:
            await self._ensure_reader()
            self._reader.execute("BEGIN")
            try:
                yield self._reader
            finally:
                self._reader.execute("COMMIT")

    async def schema_version(self) -> int:
        return await self.read(self._version)

    # engine: the schema's version, and how a write transaction starts, commits and ends

    def _version(self, conn: Any) -> int:
        return migrate.current_version(conn)

    async def _begin(self, conn: Any, durable: bool) -> None:
        if not durable:
            conn.execute("PRAGMA synchronous = NORMAL")
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        pause = 0.001
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise StoreBusy(f"database locked for over {LOCK_WAIT_SECONDS:.0f} s") from exc
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def _ensure_writer(self) -> None:
        """A connection to a database server that went away is made again (PostgreSQL); a
        SQLite file's connection cannot break."""

    async def _ensure_reader(self) -> None:
        pass

    def _commit(self, conn: Any) -> None:
        conn.execute("COMMIT")

    def _after(self, conn: Any, durable: bool) -> None:
        if not durable:
            conn.execute("PRAGMA synchronous = FULL")

    def _in_transaction(self, conn: Any, fn: Callable[[Conn], T], durable: bool) -> T:
        return _in_transaction(conn, fn, durable)

    def _snapshot(self, conn: Any, fn: Callable[[Conn], T]) -> T:
        """In the reader's thread: `fn(conn)` in one read transaction."""
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            conn.execute("COMMIT")

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)


def _in_transaction(conn: sqlite3.Connection, fn: Callable[[Conn], T], durable: bool) -> T:
    """In the writer thread: here waiting for another process's lock blocks nothing else."""
    if not durable:
        conn.execute("PRAGMA synchronous = NORMAL")
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(LOCK_WAIT_SECONDS * 1000)}")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreBusy(f"database locked for over {LOCK_WAIT_SECONDS:.0f} s") from exc
        finally:
            conn.execute("PRAGMA busy_timeout = 0")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result
    finally:
        if not durable:
            conn.execute("PRAGMA synchronous = FULL")


def _connect(
    path: Path, create: bool, migrate_to: int | None, cache_kib: int
) -> tuple[sqlite3.Connection, sqlite3.Connection]:
    if not create and not path.exists():
        raise StoreError(
            f"no database at {path} (create a list with `maillist lists create`, or point "
            "--db / MAILLIST_DB at your database)"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create directory for database {path}: {exc.strerror}") from None
    if path.is_dir():
        raise StoreError(f"cannot open database {path}: it is a directory")
    new = not path.exists()
    opened: list[sqlite3.Connection] = []
    try:
        for _ in range(2):
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            opened.append(conn)
            conn.execute("PRAGMA busy_timeout = 10000")  # until migrations are done
            for pragma in PRAGMAS:
                conn.execute(pragma)
            conn.execute(f"PRAGMA cache_size = -{cache_kib:d}")
        writer, reader = opened
        if new:  # it will hold the site secret, DKIM keys and members: its owner's only
            path.chmod(0o600)
        migrate.upgrade(writer, target=migrate_to)
        # BEGIN IMMEDIATE on the loop must never block it: no busy wait inside SQLite there
        # (Store._begin retries instead); a reader in WAL mode never needs to wait.
        writer.execute("PRAGMA busy_timeout = 0")
        reader.execute("PRAGMA query_only = ON")
        reader.execute("PRAGMA busy_timeout = 2000")  # WAL readers wait only in rare recoveries
        return writer, reader
    except sqlite3.DatabaseError as exc:
        for conn in opened:
            conn.close()
        raise StoreError(f"cannot use database {path}: {exc}") from None
    except BaseException:
        for conn in opened:
            conn.close()
        raise

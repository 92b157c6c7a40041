"""The server's one writer of incoming mail: a thread that owns a plain sqlite3 connection.

aiosqlite hops threads for every statement (about 30 per stored post once threading and policy are
done); running a whole group commit as one function call in this thread costs one hop instead."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import TypeVar

from maillist.db.connection import PRAGMAS
from maillist.errors import StoreBusy

T = TypeVar("T")
LOCK_WAIT_SECONDS = 10.0
WRITER_CACHE_KIB = 8 * 1024
SyncTx = sqlite3.Connection


class Writer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maillist-writer")
        self._conn: sqlite3.Connection | None = None
        # The ingestor and the delivery workers share this connection: one transaction at a time.
        self.lock = asyncio.Lock()

    async def start(self) -> None:
        await self._call(self._open)

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in PRAGMAS:
            conn.execute(pragma)
        # BEGIN runs on the event loop and must never block it: no busy wait inside SQLite; a
        # locked database is retried with asyncio.sleep instead (see transaction()).
        conn.execute("PRAGMA busy_timeout = 0")
        # Group commits are small; a bulk import's 64 MB page cache would only hold memory here.
        conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB:d}")
        self._conn = conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SyncTx]:
        """Statements run on the caller's thread (the event loop), where the Python work that
        drives them runs anyway, so two threads never fight over the GIL. BEGIN IMMEDIATE does
        not wait inside SQLite: if another process holds the write lock (an admin command), it is
        retried after a short asyncio.sleep. COMMIT, which waits for fsync, runs in the writer
        thread with the GIL released."""
        conn = self._connection()
        async with self.lock, self._transaction(conn) as tx:
            yield tx

    @asynccontextmanager
    async def _transaction(self, conn: sqlite3.Connection) -> AsyncIterator[SyncTx]:
        await self._begin(conn)
        try:
            yield conn
        except BaseException:
            await self._call(lambda: conn.execute("ROLLBACK"))
            raise
        try:
            await self._call(lambda: conn.execute("COMMIT"))
        except BaseException:
            if conn.in_transaction:
                await self._call(lambda: conn.execute("ROLLBACK"))
            raise

    async def _begin(self, conn: sqlite3.Connection) -> None:
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

    async def run(self, fn: Callable[[SyncTx], T]) -> T:
        """Run `fn(conn)` in the writer thread, for work too long to run on the event loop (it
        manages its own transaction); nothing else uses the connection meanwhile."""
        async with self.lock:
            return await self._call(lambda: fn(self._connection()))

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("writer not started")
        return self._conn

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn))

    async def close(self) -> None:
        if self._conn is not None:
            await self._call(self._connection().close)
            self._conn = None
        self._executor.shutdown(wait=True)


@contextmanager
def transaction(conn: SyncTx) -> Iterator[SyncTx]:
    """For code running in the writer thread (Writer.run): here waiting on a lock blocks nothing."""
    conn.execute(f"PRAGMA busy_timeout = {int(LOCK_WAIT_SECONDS * 1000)}")
    try:
        conn.execute("BEGIN IMMEDIATE")
    finally:
        conn.execute("PRAGMA busy_timeout = 0")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")

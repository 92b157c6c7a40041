"""The server's one writer of incoming mail: a thread that owns a plain sqlite3 connection.

aiosqlite hops threads for every statement (about 30 per stored post once threading and policy are
done); running a whole group commit as one function call in this thread costs one hop instead."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import TypeVar

from maillist.db.connection import PRAGMAS

T = TypeVar("T")
SyncTx = sqlite3.Connection


class Writer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maillist-writer")
        self._conn: sqlite3.Connection | None = None

    async def start(self) -> None:
        await self._call(self._open)

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in PRAGMAS:
            conn.execute(pragma)
        self._conn = conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SyncTx]:
        """BEGIN IMMEDIATE and COMMIT in the writer thread (they may wait on a lock or on fsync,
        with the GIL released); the statements between run on the caller's thread, where the
        Python work that drives them runs anyway, so the two threads never fight over the GIL."""
        conn = self._connection()
        await self._call(lambda: conn.execute("BEGIN IMMEDIATE"))
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

    async def run(self, fn: Callable[[SyncTx], T]) -> T:
        """Run `fn(conn)` in the writer thread; calls are strictly one after another."""
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
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")

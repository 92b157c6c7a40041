"""Open the SQLite file (WAL, synchronous=FULL, foreign keys) and run explicit transactions."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from maillist.db import migrate
from maillist.errors import StoreError

CACHE_KIB = 64 * 1024
# A 100,000-row import is one transaction; with SQLite's 2 MB default page cache it spills dirty
# pages mid-transaction and runs 8x slower. The cache grows only as used.
PRAGMAS = (
    "PRAGMA busy_timeout = 10000",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    f"PRAGMA cache_size = -{CACHE_KIB:d}",
)

Tx = aiosqlite.Connection
"""What services hand to db/ functions. Services never use it themselves, so another backend can
slot in behind the same db/ function signatures."""


class Database:
    """The async (aiosqlite) connection for admin commands and the server's reads.

    The server's hot write path, storing incoming mail, has its own connection and thread
    (db/writer.py), so a post costs one thread hop per group commit, not one per statement."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        # One transaction at a time on the one connection: concurrent sessions in the server queue
        # here instead of nesting BEGINs.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls, path: Path, *, create: bool = True, migrate_to: int | None = None
    ) -> Database:
        """Open the database at `path`; with `create`, make it (and its directory) if missing.
        Commands that only read or change what exists never create an empty database by mistake."""
        if not create and not path.exists():
            raise StoreError(
                f"no database at {path} (create a list with `maillist lists create`, or point "
                "--db / MAILLIST_DB at your database)"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create directory for database {path}: {exc.strerror}"
            ) from None
        if path.is_dir():
            raise StoreError(f"cannot open database {path}: it is a directory")
        try:
            conn = await aiosqlite.connect(str(path), isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from None
        db = cls(conn, path)
        try:
            for pragma in PRAGMAS:
                await conn.execute(pragma)
            await migrate.upgrade(conn, target=migrate_to)
        except sqlite3.DatabaseError as exc:
            await conn.close()
            raise StoreError(f"cannot use database {path}: {exc}") from None
        except BaseException:
            await conn.close()
            raise
        return db

    async def close(self) -> None:
        await self._conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """BEGIN IMMEDIATE ... COMMIT: every command and every accepted message is one of these."""
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Tx]:
        """A read transaction, so a listing made of several queries sees one state."""
        async with self._lock:
            await self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                await self._conn.execute("COMMIT")

    async def schema_version(self) -> int:
        return await migrate.current_version(self._conn)

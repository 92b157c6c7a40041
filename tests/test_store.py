"""The store's write lock: sessions waiting for their 250 go first, delivery is never starved;
and what a write transaction means, on both engines."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from maillist.db import Store, engine
from maillist.db.store import Conn, _WriteLock, savepoint
from maillist.errors import StoreConflict


async def test_urgent_writers_go_before_waiting_background_ones() -> None:
    lock = _WriteLock()
    order: list[str] = []
    release = asyncio.Event()

    async def writer(name: str, urgent: bool) -> None:
        async with lock.hold(urgent):
            order.append(name)
            if name == "first":
                await release.wait()

    first = asyncio.create_task(writer("first", False))
    await asyncio.sleep(0)
    waiting = [
        asyncio.create_task(writer(name, urgent))
        for name, urgent in [("bg1", False), ("post1", True), ("bg2", False), ("post2", True)]
    ]
    await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(asyncio.gather(first, *waiting), 5)
    assert order == ["first", "post1", "post2", "bg1", "bg2"]


async def test_a_flood_of_urgent_writers_still_lets_background_through() -> None:
    lock = _WriteLock()
    order: list[str] = []
    gate = asyncio.Event()

    async def writer(name: str, urgent: bool) -> None:
        async with lock.hold(urgent):
            order.append(name)
            if name == "first":
                await gate.wait()

    tasks = [asyncio.create_task(writer("first", True))]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(writer("bg", False)))
    tasks += [asyncio.create_task(writer(f"post{i}", True)) for i in range(10)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order.index("bg") == 1 + _WriteLock.URGENT_RUN


async def test_a_cancelled_waiter_neither_holds_nor_loses_the_lock() -> None:
    lock = _WriteLock()
    gate = asyncio.Event()
    done: list[str] = []

    async def holder() -> None:
        async with lock.hold(False):
            await gate.wait()

    async def waiter(name: str) -> None:
        async with lock.hold(True):
            done.append(name)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    gone = asyncio.create_task(waiter("gone"))
    kept = asyncio.create_task(waiter("kept"))
    await asyncio.sleep(0)
    gone.cancel()
    gate.set()
    await asyncio.wait_for(asyncio.gather(first, kept), 5)
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert done == ["kept"]
    async with lock.hold(False):  # free again
        pass


# A write transaction's semantics hold whichever engine runs it and however its statements travel
# (on PostgreSQL, BEGIN and deferred writes go in one pipeline with the next statement or COMMIT).


async def _rows(db: Store) -> list[str]:
    return await db.read(
        lambda conn: [r[0] for r in conn.execute("SELECT value FROM site ORDER BY key").fetchall()]
    )


def _put(conn: Conn, key: str, value: str) -> None:
    engine.defer(conn, "INSERT INTO site (key, value) VALUES (?, ?)", (key, value))


async def test_a_deferred_write_is_seen_by_the_next_statement_and_committed(db: Store) -> None:
    def transaction(conn: Conn) -> str:
        _put(conn, "t-a", "one")
        return str(conn.execute("SELECT value FROM site WHERE key = 't-a'").fetchone()[0])

    assert await db.write(transaction) == "one"
    await db.write(lambda conn: _put(conn, "t-b", "two"))  # sent with the COMMIT
    assert {"one", "two"} <= set(await _rows(db))


async def test_a_deferred_write_that_fails_rolls_back_its_savepoint_only(db: Store) -> None:
    await db.write(lambda conn: _put(conn, "t-a", "one"))

    def transaction(conn: Conn) -> bool:
        _put(conn, "t-b", "kept")
        try:
            with savepoint(conn, "dup"):
                _put(conn, "t-c", "undone")
                _put(conn, "t-a", "again")  # the key is taken
                conn.execute("SELECT 1").fetchone()
        except (StoreConflict, sqlite3.IntegrityError):
            return True
        return False

    assert await db.write(transaction)
    values = await _rows(db)
    assert "kept" in values and "undone" not in values and values.count("one") == 1


async def test_a_deferred_write_that_fails_at_commit_rolls_back_the_transaction(
    db: Store,
) -> None:
    await db.write(lambda conn: _put(conn, "t-a", "one"))

    def transaction(conn: Conn) -> None:
        _put(conn, "t-b", "lost")
        _put(conn, "t-a", "again")

    with pytest.raises((StoreConflict, sqlite3.IntegrityError)):
        await db.write(transaction)
    assert "lost" not in await _rows(db)
    await db.write(lambda conn: _put(conn, "t-d", "after"))  # the session is usable again
    assert "after" in await _rows(db)


async def test_a_transaction_that_runs_nothing_commits_nothing(db: Store) -> None:
    assert await db.write(lambda conn: 7) == 7
    with pytest.raises(ValueError):
        await db.write(lambda conn: (_ for _ in ()).throw(ValueError("no")))
    await db.write(lambda conn: _put(conn, "t-e", "fine"))
    assert "fine" in await _rows(db)


async def test_savepoints_nested_empty_and_failing_keep_their_meaning(db: Store) -> None:
    await db.write(lambda conn: _put(conn, "t-a", "one"))

    def transaction(conn: Conn) -> list[str]:
        seen: list[str] = []
        with savepoint(conn, "empty"):
            pass
        with savepoint(conn, "around"):
            _put(conn, "t-b", "outer")
            try:
                with savepoint(conn, "within"):
                    _put(conn, "t-c", "inner")
                    raise ValueError("undo the inner one")
            except ValueError:
                seen.append("inner undone")
        try:
            with savepoint(conn, "first"):  # fails before anything inside it is sent
                _put(conn, "t-f", "unsent")
                raise ValueError("undo it unsent")
        except ValueError:
            seen.append("first undone")
        try:
            with savepoint(conn, "dup"):  # fails at its RELEASE (PostgreSQL) or at once
                _put(conn, "t-d", "undone")
                _put(conn, "t-a", "again")
        except (StoreConflict, sqlite3.IntegrityError):
            seen.append("dup undone")
        _put(conn, "t-e", "after")
        return seen

    assert await db.write(transaction) == ["inner undone", "first undone", "dup undone"]
    values = await _rows(db)
    assert {"one", "outer", "after"} <= set(values)
    assert not {"inner", "unsent", "undone", "again"} & set(values)

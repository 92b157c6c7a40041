"""The store's write lock: sessions waiting for their 250 go first, delivery is never starved."""

from __future__ import annotations

import asyncio

import pytest

from maillist.db.store import _WriteLock


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

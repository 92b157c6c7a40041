"""Normalise many addresses at once, across CPU cores when the batch is large enough to pay.

email-validator costs about 20 us an address, most of it in domain checks; a 100,000-row import
spends more time there than in SQLite, so large batches are split over a process pool."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

from maillist.errors import BadAddress
from maillist.people.addresses import normalise_each

PARALLEL_FROM = 20_000
CHUNK = 5_000


async def normalise_all(
    addresses: list[str], progress: Callable[[int], None] | None = None
) -> list[str | BadAddress]:
    workers = min(os.cpu_count() or 1, 4)
    if len(addresses) < PARALLEL_FROM or workers < 2:
        results = normalise_each(addresses)
        if progress is not None:
            progress(len(addresses))
        return results
    chunks = [addresses[i : i + CHUNK] for i in range(0, len(addresses), CHUNK)]
    loop = asyncio.get_running_loop()
    # spawn, not fork: the parent runs the store's writer thread; forking a threaded process is unsafe.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [loop.run_in_executor(pool, normalise_each, chunk) for chunk in chunks]
        if progress is not None:
            for future, chunk in zip(futures, chunks, strict=True):
                future.add_done_callback(_advance(progress, len(chunk)))
        done = await asyncio.gather(*futures)
    return [result for chunk_results in done for result in chunk_results]


def _advance(progress: Callable[[int], None], rows: int) -> Callable[[object], None]:
    return lambda _future: progress(rows)

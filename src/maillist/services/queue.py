"""What the outbound queue holds, for `maillist queue`, and making deferred mail due now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from maillist.db import Database
from maillist.db import queue as db_queue


@dataclass(frozen=True, slots=True)
class QueueView:
    jobs_waiting: int
    counts: dict[str, tuple[int, int]]
    rows: list[db_queue.QueueRow]


async def view(db: Database, limit: int = 100) -> QueueView:
    async with db.snapshot() as tx:
        return QueueView(
            await db_queue.pending_jobs(tx),
            await db_queue.counts(tx),
            await db_queue.open_batches(tx, ("pending", "sending", "deferred", "failed"), limit),
        )


async def retry(db: Database) -> int:
    async with db.transaction() as tx:
        return await db_queue.retry_now(tx, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))

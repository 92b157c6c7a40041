"""What the outbound queue holds, for `maillist queue`, and making deferred or stuck mail due now.

A batch in `sending` holds a lease (its next_attempt_at): past it the batch is stuck (its sender
died or hung before recording a result), and the server itself takes it again."""

from __future__ import annotations

from dataclasses import dataclass

from maillist import clock
from maillist.db import Conn, Store
from maillist.db import queue as db_queue
from maillist.models import BatchState


@dataclass(frozen=True, slots=True)
class FailedJob:
    job_id: int
    list_address: str
    message_id: str
    error: str


@dataclass(frozen=True, slots=True)
class QueueView:
    jobs_waiting: int
    counts: dict[str, tuple[int, int]]
    rows: list[db_queue.QueueRow]
    stuck: frozenset[int]  # batch ids `sending` past their lease
    failed_jobs: list[FailedJob]


def _now() -> str:
    return clock.stamp()


async def view(db: Store, limit: int = 100) -> QueueView:
    now = _now()

    def look(conn: Conn) -> QueueView:
        rows = db_queue.open_batches(
            conn, tuple(s for s in BatchState if s is not BatchState.SENT), limit
        )
        return QueueView(
            db_queue.pending_jobs(conn),
            db_queue.counts(conn),
            rows,
            frozenset(
                r.batch_id for r in rows if r.state == "sending" and r.next_attempt_at <= now
            ),
            [FailedJob(*row) for row in db_queue.failed_jobs(conn, limit)],
        )

    return await db.read(look)


async def retry(db: Store) -> tuple[int, int]:
    """(deferred, stuck) batches made due now."""
    return await db.write(lambda conn: db_queue.retry_now(conn, _now()))

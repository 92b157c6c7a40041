"""SQL for reading the outbound queue from the CLI (`maillist queue`)."""

from __future__ import annotations

from dataclasses import dataclass

from maillist.db.connection import Tx


@dataclass(frozen=True, slots=True)
class QueueRow:
    batch_id: int
    list_address: str
    message_id: str
    state: str
    recipients: int
    attempts: int
    next_attempt_at: str
    last_error: str


async def counts(tx: Tx) -> dict[str, tuple[int, int]]:
    """state -> (batches, recipients)."""
    async with tx.execute(
        "SELECT state, COUNT(*), SUM(length(recipients) - length(replace(recipients, char(10), '')) + 1) "
        "FROM outbound_batches GROUP BY state"
    ) as cur:
        return {row[0]: (int(row[1]), int(row[2] or 0)) for row in await cur.fetchall()}


async def pending_jobs(tx: Tx) -> int:
    async with tx.execute("SELECT COUNT(*) FROM outbound_jobs WHERE state = 'pending'") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def open_batches(tx: Tx, states: tuple[str, ...], limit: int) -> list[QueueRow]:
    marks = ",".join("?" * len(states))
    async with tx.execute(
        f"""SELECT b.id, l.address, m.message_id, b.state,
                   length(b.recipients) - length(replace(b.recipients, char(10), '')) + 1,
                   b.attempts, b.next_attempt_at, b.last_error
            FROM outbound_batches b JOIN outbound_jobs j ON j.id = b.job_id
            JOIN messages m ON m.id = j.message_id JOIN lists l ON l.id = j.list_id
            WHERE b.state IN ({marks}) ORDER BY b.next_attempt_at, b.id LIMIT ?""",
        (*states, limit),
    ) as cur:
        return [QueueRow(*row) for row in await cur.fetchall()]


async def failed_jobs(tx: Tx, limit: int) -> list[tuple[int, str, str, str]]:
    """(job id, list address, Message-ID, error) of fan-out jobs that could not be expanded."""
    async with tx.execute(
        """SELECT j.id, l.address, m.message_id, j.last_error FROM outbound_jobs j
           JOIN messages m ON m.id = j.message_id JOIN lists l ON l.id = j.list_id
           WHERE j.state = 'failed' ORDER BY j.id DESC LIMIT ?""",
        (limit,),
    ) as cur:
        return [(r[0], r[1], r[2], r[3]) for r in await cur.fetchall()]


async def retry_now(tx: Tx, now: str) -> tuple[int, int]:
    """(deferred batches, stuck batches) made due now. A batch is stuck when it is `sending`
    past its lease: its sender died or hung without recording a result."""
    deferred = await tx.execute(
        "UPDATE outbound_batches SET next_attempt_at = ? WHERE state = 'deferred'", (now,)
    )
    stuck = await tx.execute(
        "UPDATE outbound_batches SET state = 'pending', next_attempt_at = ? "
        "WHERE state = 'sending' AND next_attempt_at <= ?",
        (now, now),
    )
    return deferred.rowcount, stuck.rowcount

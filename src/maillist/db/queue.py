"""SQL for reading the outbound queue from the CLI (`maillist queue`)."""

from __future__ import annotations

from dataclasses import dataclass

from maillist.db.store import Conn


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


def counts(conn: Conn) -> dict[str, tuple[int, int]]:
    """state -> (batches, recipients)."""
    cur = conn.execute(
        "SELECT state, COUNT(*), "
        "CAST(SUM(length(recipients) - length(replace(recipients, char(10), '')) + 1) AS BIGINT) "
        "FROM outbound_batches GROUP BY state"
    )
    return {row[0]: (int(row[1]), int(row[2] or 0)) for row in cur.fetchall()}


def pending_jobs(conn: Conn) -> int:
    cur = conn.execute("SELECT COUNT(*) FROM outbound_jobs WHERE state = 'pending'")
    row = cur.fetchone()
    return int(row[0]) if row else 0


def open_batches(conn: Conn, states: tuple[str, ...], limit: int) -> list[QueueRow]:
    marks = ",".join("?" * len(states))
    cur = conn.execute(
        f"""SELECT b.id, l.address, m.message_id, b.state,
                   length(b.recipients) - length(replace(b.recipients, char(10), '')) + 1,
                   b.attempts, b.next_attempt_at, b.last_error
            FROM outbound_batches b JOIN outbound_jobs j ON j.id = b.job_id
            JOIN messages m ON m.id = j.message_id JOIN lists l ON l.id = j.list_id
            WHERE b.state IN ({marks}) ORDER BY b.next_attempt_at, b.id LIMIT ?""",
        (*states, limit),
    )
    return [QueueRow(*row) for row in cur.fetchall()]


def failed_jobs(conn: Conn, limit: int) -> list[tuple[int, str, str, str]]:
    """(job id, list address, Message-ID, error) of fan-out jobs that could not be expanded."""
    cur = conn.execute(
        """SELECT j.id, l.address, m.message_id, j.last_error FROM outbound_jobs j
           JOIN messages m ON m.id = j.message_id JOIN lists l ON l.id = j.list_id
           WHERE j.state = 'failed' ORDER BY j.id DESC LIMIT ?""",
        (limit,),
    )
    return [(r[0], r[1], r[2], r[3]) for r in cur.fetchall()]


def retry_now(conn: Conn, now: str) -> tuple[int, int]:
    """(deferred batches, stuck batches) made due now. A batch is stuck when it is `sending`
    past its lease: its sender died or hung without recording a result."""
    deferred = conn.execute(
        "UPDATE outbound_batches SET next_attempt_at = ? WHERE state = 'deferred'", (now,)
    )
    stuck = conn.execute(
        "UPDATE outbound_batches SET state = 'pending', next_attempt_at = ? "
        "WHERE state = 'sending' AND next_attempt_at <= ?",
        (now, now),
    )
    return deferred.rowcount, stuck.rowcount

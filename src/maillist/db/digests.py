"""SQL for digests: the posts waiting for one, the digests sent, who gets them, their job."""

from __future__ import annotations

from dataclasses import dataclass

from maillist.db import engine
from maillist.db.store import Conn


@dataclass(frozen=True, slots=True)
class Waiting:
    row: int
    size: int


def waiting(conn: Conn, list_id: int) -> list[Waiting]:
    """The posts waiting for the list's next digest; the digest is this transaction's to make
    until it ends (several processes: never two digests of the same posts)."""
    engine.exclusive(conn, f"digest:{list_id}")
    rows = conn.execute(
        "SELECT q.message_row, m.size FROM digest_queue q JOIN messages m ON m.id = q.message_row "
        "WHERE q.list_id = ? ORDER BY m.date, m.id",
        (list_id,),
    ).fetchall()
    return [Waiting(int(r[0]), int(r[1])) for r in rows]


def take(conn: Conn, list_id: int, rows: list[int]) -> None:
    conn.executemany(
        "DELETE FROM digest_queue WHERE list_id = ? AND message_row = ?",
        [(list_id, r) for r in rows],
    )


def last(conn: Conn, list_id: int) -> tuple[int, int, str] | None:
    """(volume, issue, sent_at) of the list's latest digest."""
    row = conn.execute(
        "SELECT volume, issue, sent_at FROM digests WHERE list_id = ? ORDER BY id DESC LIMIT 1",
        (list_id,),
    ).fetchone()
    return (int(row[0]), int(row[1]), str(row[2])) if row else None


def record(
    conn: Conn, list_id: int, volume: int, issue: int, posts: int, job_id: int | None, at: str
) -> None:
    conn.execute(
        "INSERT INTO digests (list_id, volume, issue, posts, job_id, sent_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (list_id, volume, issue, posts, job_id, at),
    )


def readers(conn: Conn, list_id: int) -> list[str]:
    """Enabled members in digest mode, in (domain, person) order."""
    rows = conn.execute(
        "SELECT p.address FROM subscriptions s JOIN people p ON p.id = s.person_id "
        "WHERE s.list_id = ? AND s.mode = 'digest' AND s.status = 'enabled' "
        "ORDER BY s.domain, s.person_id",
        (list_id,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def queue_job(
    conn: Conn, list_id: int, cause_row: int, envelope_from: str, data: bytes, recipients: int,
    at: str,
) -> int:  # fmt: skip
    """A job already expanded (the digest is its copy); the caller adds its batches."""
    row = conn.execute(
        "INSERT INTO outbound_jobs (message_id, list_id, state, envelope_from, rendered, "
        "recipients, created_at) VALUES (?, ?, 'expanded', ?, ?, ?, ?) RETURNING id",
        (cause_row, list_id, envelope_from, data, recipients, at),
    ).fetchone()
    return int(row[0])

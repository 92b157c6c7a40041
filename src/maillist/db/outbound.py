"""SQL for the outbound queue: one fan-out job per accepted post."""

from __future__ import annotations

from maillist.db.store import Conn


def enqueue(conn: Conn, message_row: int, list_id: int, at: str) -> int:
    """Written in the verdict's own transaction, so an accepted post can never be forgotten;
    the post waits for the next digest too (db/digests.py)."""
    conn.execute(
        "INSERT INTO digest_queue (list_id, message_row) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (list_id, message_row),
    )
    cur = conn.execute(
        "INSERT INTO outbound_jobs (message_id, list_id, created_at) VALUES (?, ?, ?) RETURNING id",
        (message_row, list_id, at),
    )
    row = cur.fetchone()
    assert row is not None
    return int(row[0])

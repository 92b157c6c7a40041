"""SQL for the outbound queue: one fan-out job per accepted post."""

from __future__ import annotations

from maillist.db import engine
from maillist.db.store import Conn


def enqueue(conn: Conn, message_row: int, list_id: int, at: str) -> None:
    """Written in the verdict's own transaction, so an accepted post can never be forgotten;
    the post waits for the next digest too (db/digests.py). Nothing is read back: on
    PostgreSQL the two INSERTs go with the transaction's next statement (db/engine.defer)."""
    engine.defer(
        conn,
        "INSERT INTO digest_queue (list_id, message_row) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (list_id, message_row),
    )
    engine.defer(
        conn,
        "INSERT INTO outbound_jobs (message_id, list_id, created_at) VALUES (?, ?, ?)",
        (message_row, list_id, at),
    )

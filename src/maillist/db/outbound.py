"""SQL for the outbound queue: one fan-out job per accepted post."""

from __future__ import annotations

from maillist.db.connection import Tx


async def enqueue(tx: Tx, message_row: int, list_id: int, at: str) -> int:
    """Written in the verdict's own transaction, so an accepted post can never be forgotten."""
    async with tx.execute(
        "INSERT INTO outbound_jobs (message_id, list_id, created_at) VALUES (?, ?, ?) RETURNING id",
        (message_row, list_id, at),
    ) as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])

"""SQL for messages: raw posts, placeholders for ids referenced before they arrive, and threads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from maillist.db.connection import Tx
from maillist.models import StoredMessage, ThreadSummary

_COLUMNS = (
    "id, list_id, kind, message_id, thread_id, parent_id, envelope_from, recipient, sender, "
    "sender_name, subject, date, in_reply_to, refs, size, received_at, verdict, reasons, raw IS NULL"
)


def _row(row: Any, raw: bytes | None = None) -> StoredMessage:
    (row_id, list_id, kind, message_id, thread_id, parent_id, envelope_from, recipient, sender,
     sender_name, subject, date, in_reply_to, refs, size, received_at, verdict, reasons,
     placeholder) = row[:19]  # fmt: skip
    return StoredMessage(
        id=row_id, list_id=list_id, kind=kind, message_id=message_id, thread_id=thread_id,
        parent_id=parent_id, envelope_from=envelope_from, recipient=recipient, sender=sender,
        sender_name=sender_name, subject=subject, date=date, in_reply_to=in_reply_to, refs=refs,
        size=size, received_at=received_at, verdict=verdict, reasons=reasons,
        placeholder=bool(placeholder), raw=raw,
    )  # fmt: skip


async def by_message_id(tx: Tx, message_id: str, *, with_raw: bool) -> list[StoredMessage]:
    async with tx.execute(
        f"SELECT {_COLUMNS}, raw FROM messages WHERE message_id = ? ORDER BY id", (message_id,)
    ) as cur:
        rows = await cur.fetchall()
    return [_row(r, r[19] if with_raw else None) for r in rows]


async def threads(tx: Tx, list_id: int, limit: int) -> list[ThreadSummary]:
    """Threads newest activity first that hold at least one visible (accepted or approved) post."""
    async with tx.execute(
        """SELECT t.id, t.subject, t.started_at, t.last_activity_at FROM threads t
           WHERE t.list_id = ? AND EXISTS (
               SELECT 1 FROM messages m WHERE m.thread_id = t.id
               AND m.verdict IN ('accept', 'approved'))
           ORDER BY t.last_activity_at DESC, t.id DESC LIMIT ?""",
        (list_id, limit),
    ) as cur:
        return [ThreadSummary(*row) for row in await cur.fetchall()]


async def thread_messages(tx: Tx, thread_ids: Sequence[int]) -> list[StoredMessage]:
    if not thread_ids:
        return []
    marks = ",".join("?" * len(thread_ids))
    async with tx.execute(
        f"SELECT {_COLUMNS} FROM messages WHERE thread_id IN ({marks}) ORDER BY date, id",
        tuple(thread_ids),
    ) as cur:
        return [_row(row) for row in await cur.fetchall()]


async def set_verdict(tx: Tx, row_id: int, verdict: str, reasons: str | None = None) -> None:
    if reasons is None:
        await tx.execute("UPDATE messages SET verdict = ? WHERE id = ?", (verdict, row_id))
    else:
        await tx.execute(
            "UPDATE messages SET verdict = ?, reasons = ? WHERE id = ?", (verdict, reasons, row_id)
        )

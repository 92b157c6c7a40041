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


async def find(tx: Tx, list_id: int, kind: str, message_id: str) -> StoredMessage | None:
    async with tx.execute(
        f"SELECT {_COLUMNS} FROM messages WHERE list_id = ? AND kind = ? AND message_id = ?",
        (list_id, kind, message_id),
    ) as cur:
        row = await cur.fetchone()
    return _row(row) if row else None


async def by_id(tx: Tx, row_id: int) -> StoredMessage | None:
    async with tx.execute(f"SELECT {_COLUMNS} FROM messages WHERE id = ?", (row_id,)) as cur:
        row = await cur.fetchone()
    return _row(row) if row else None


async def by_message_id(tx: Tx, message_id: str, *, with_raw: bool) -> list[StoredMessage]:
    async with tx.execute(
        f"SELECT {_COLUMNS}, raw FROM messages WHERE message_id = ? ORDER BY id", (message_id,)
    ) as cur:
        rows = await cur.fetchall()
    return [_row(r, r[19] if with_raw else None) for r in rows]


async def known_post_ids(tx: Tx, list_id: int, message_ids: Sequence[str]) -> set[str]:
    """Which of these ids the list has a post row for (a real message or a placeholder)."""
    if not message_ids:
        return set()
    marks = ",".join("?" * len(message_ids))
    async with tx.execute(
        f"SELECT message_id FROM messages WHERE list_id = ? AND kind = 'post' "
        f"AND message_id IN ({marks})",
        (list_id, *message_ids),
    ) as cur:
        return {row[0] for row in await cur.fetchall()}


async def insert_placeholder(tx: Tx, list_id: int, message_id: str, thread_id: int) -> int:
    async with tx.execute(
        "INSERT INTO messages (list_id, kind, message_id, thread_id) VALUES (?, 'post', ?, ?) "
        "RETURNING id",
        (list_id, message_id, thread_id),
    ) as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def insert(tx: Tx, list_id: int, kind: str, message_id: str, fields: dict[str, Any]) -> int:
    columns = ", ".join(fields)
    marks = ", ".join("?" * len(fields))
    async with tx.execute(
        f"INSERT INTO messages (list_id, kind, message_id, {columns}) VALUES (?, ?, ?, {marks}) "
        "RETURNING id",
        (list_id, kind, message_id, *fields.values()),
    ) as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


_UPDATABLE = frozenset(
    {
        "thread_id", "parent_id", "envelope_from", "recipient", "sender", "sender_name", "subject",
        "date", "in_reply_to", "refs", "raw", "size", "received_at", "verdict", "reasons",
    }
)  # fmt: skip


async def update(tx: Tx, row_id: int, fields: dict[str, Any]) -> None:
    if not fields.keys() <= _UPDATABLE:  # column names are interpolated: known names only
        raise ValueError(sorted(fields.keys() - _UPDATABLE))
    assignments = ", ".join(f"{name} = ?" for name in fields)
    await tx.execute(f"UPDATE messages SET {assignments} WHERE id = ?", (*fields.values(), row_id))


async def ancestors(tx: Tx, row_id: int, limit: int = 10_000) -> list[int]:
    """Ids from `row_id` up to its root (bounded, and safe on a loop: UNION drops repeats)."""
    async with tx.execute(
        """WITH RECURSIVE up(id) AS (
               SELECT ? UNION
               SELECT m.parent_id FROM messages m JOIN up ON m.id = up.id
               WHERE m.parent_id IS NOT NULL
           ) SELECT id FROM up LIMIT ?""",
        (row_id, limit),
    ) as cur:
        return [row[0] for row in await cur.fetchall()]


async def create_thread(tx: Tx, list_id: int, subject: str, key: str, at: str) -> int:
    async with tx.execute(
        "INSERT INTO threads (list_id, subject, subject_key, started_at, last_activity_at) "
        "VALUES (?, ?, ?, ?, ?) RETURNING id",
        (list_id, subject, key, at, at),
    ) as cur:
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def merge_threads(tx: Tx, into: int, source: int) -> None:
    """Move every message of `source` into `into`, keeping the later activity, and drop `source`."""
    await tx.execute("UPDATE messages SET thread_id = ? WHERE thread_id = ?", (into, source))
    await tx.execute(
        "UPDATE threads SET last_activity_at = max(last_activity_at, "
        "(SELECT last_activity_at FROM threads WHERE id = ?)) WHERE id = ?",
        (source, into),
    )
    await tx.execute("DELETE FROM threads WHERE id = ?", (source,))


async def touch_thread(tx: Tx, thread_id: int, at: str) -> None:
    await tx.execute(
        "UPDATE threads SET last_activity_at = max(last_activity_at, ?) WHERE id = ?",
        (at, thread_id),
    )


async def name_thread(tx: Tx, thread_id: int, subject: str, key: str) -> None:
    await tx.execute(
        "UPDATE threads SET subject = ?, subject_key = ? WHERE id = ?", (subject, key, thread_id)
    )


async def name_thread_if_unnamed(tx: Tx, thread_id: int, subject: str, key: str) -> None:
    await tx.execute(
        "UPDATE threads SET subject = ?, subject_key = ? WHERE id = ? AND subject_key = ''",
        (subject, key, thread_id),
    )


async def thread_root(tx: Tx, thread_id: int) -> int | None:
    async with tx.execute(
        "SELECT id FROM messages WHERE thread_id = ? AND parent_id IS NULL ORDER BY id LIMIT 1",
        (thread_id,),
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else None


async def recent_thread_by_subject(tx: Tx, list_id: int, key: str, since: str) -> int | None:
    async with tx.execute(
        "SELECT id FROM threads WHERE list_id = ? AND subject_key = ? AND last_activity_at >= ? "
        "ORDER BY last_activity_at DESC LIMIT 1",
        (list_id, key, since),
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else None


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

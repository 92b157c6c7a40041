"""SQL for messages: raw posts, placeholders for ids referenced before they arrive, and threads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from maillist.db.store import Conn
from maillist.models import StoredMessage, ThreadSummary

_COLUMNS = (
    "id, list_id, kind, message_id, thread_id, parent_id, envelope_from, recipient, sender, "
    "sender_name, subject, date, in_reply_to, refs, size, received_at, verdict, reasons, raw IS NULL, "
    "auth, author_policy, verified"
)


def _row(row: Any, raw: bytes | None = None) -> StoredMessage:
    (row_id, list_id, kind, message_id, thread_id, parent_id, envelope_from, recipient, sender,
     sender_name, subject, date, in_reply_to, refs, size, received_at, verdict, reasons,
     placeholder, auth, author_policy, verified) = row[:22]  # fmt: skip
    return StoredMessage(
        id=row_id, list_id=list_id, kind=kind, message_id=message_id, thread_id=thread_id,
        parent_id=parent_id, envelope_from=envelope_from, recipient=recipient, sender=sender,
        sender_name=sender_name, subject=subject, date=date, in_reply_to=in_reply_to, refs=refs,
        size=size, received_at=received_at, verdict=verdict, reasons=reasons,
        placeholder=bool(placeholder), raw=raw, auth=auth, author_policy=author_policy,
        verified=bool(verified),
    )  # fmt: skip


def by_message_id(conn: Conn, message_id: str, *, with_raw: bool) -> list[StoredMessage]:
    cur = conn.execute(
        f"SELECT {_COLUMNS}, raw FROM messages WHERE message_id = ? ORDER BY id", (message_id,)
    )
    rows = cur.fetchall()
    return [_row(r, r[22] if with_raw else None) for r in rows]


def threads(conn: Conn, list_id: int, limit: int) -> list[ThreadSummary]:
    """Threads newest activity first that hold at least one visible (accepted or approved) post."""
    cur = conn.execute(
        """SELECT t.id, t.subject, t.started_at, t.last_activity_at FROM threads t
           WHERE t.list_id = ? AND EXISTS (
               SELECT 1 FROM messages m WHERE m.thread_id = t.id
               AND m.verdict IN ('accept', 'approved'))
           ORDER BY t.last_activity_at DESC, t.id DESC LIMIT ?""",
        (list_id, limit),
    )
    return [ThreadSummary(*row) for row in cur.fetchall()]


def thread_messages(conn: Conn, thread_ids: Sequence[int]) -> list[StoredMessage]:
    if not thread_ids:
        return []
    marks = ",".join("?" * len(thread_ids))
    cur = conn.execute(
        f"SELECT {_COLUMNS} FROM messages WHERE thread_id IN ({marks}) ORDER BY date, id",
        tuple(thread_ids),
    )
    return [_row(row) for row in cur.fetchall()]


def set_verdict(conn: Conn, row_id: int, verdict: str, reasons: str | None = None) -> None:
    if reasons is None:
        conn.execute("UPDATE messages SET verdict = ? WHERE id = ?", (verdict, row_id))
    else:
        conn.execute(
            "UPDATE messages SET verdict = ?, reasons = ? WHERE id = ?", (verdict, reasons, row_id)
        )


def claim(conn: Conn, row_id: int) -> str:
    """Let an approved post claim its Message-ID. Returns "claimed", "adopted" (it took the place
    of a placeholder: the replies that hung from the placeholder now hang from it, and the two
    threads are one) or "taken" (a delivered post already holds the id; nothing changed)."""
    cur = conn.execute(
        "SELECT list_id, kind, message_id, thread_id FROM messages WHERE id = ?", (row_id,)
    )
    row = cur.fetchone()
    if row is None:
        return "taken"
    list_id, kind, message_id, thread_id = row
    cur = conn.execute(
        "SELECT id, raw IS NULL, thread_id FROM messages WHERE list_id = ? AND kind = ? "
        "AND message_id = ? AND claimed = 1 AND id <> ?",
        (list_id, kind, message_id, row_id),
    )
    holder = cur.fetchone()
    if holder is not None and not holder[1]:
        return "taken"
    if holder is not None:
        placeholder, old_thread = holder[0], holder[2]
        conn.execute("UPDATE messages SET parent_id = ? WHERE parent_id = ?", (row_id, placeholder))
        if old_thread is not None and thread_id is not None and old_thread != thread_id:
            conn.execute(
                "UPDATE messages SET thread_id = ? WHERE thread_id = ?", (thread_id, old_thread)
            )
            conn.execute(
                "UPDATE threads SET last_activity_at = (SELECT MAX(t.last_activity_at) FROM threads t "
                "WHERE t.id IN (threads.id, ?)) WHERE id = ?",
                (old_thread, thread_id),
            )
            conn.execute("DELETE FROM threads WHERE id = ?", (old_thread,))
        conn.execute("DELETE FROM messages WHERE id = ?", (placeholder,))
        # Headers that would close a loop (the post refers to one of its own replies): the post
        # becomes its thread's root.
        cur = conn.execute(
            """WITH RECURSIVE up(id) AS (
                   SELECT parent_id FROM messages WHERE id = ? UNION
                   SELECT m.parent_id FROM messages m JOIN up ON m.id = up.id
                   WHERE m.parent_id IS NOT NULL
               ) SELECT 1 FROM up WHERE id = ? LIMIT 1""",
            (row_id, row_id),
        )
        if cur.fetchone() is not None:
            conn.execute("UPDATE messages SET parent_id = NULL WHERE id = ?", (row_id,))
    conn.execute("UPDATE messages SET claimed = 1 WHERE id = ?", (row_id,))
    return "adopted" if holder is not None else "claimed"

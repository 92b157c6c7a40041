"""SQL for held posts awaiting a moderator."""

from __future__ import annotations

from typing import Any

from maillist.db.store import Conn
from maillist.models import HeldMessage

_SELECT = """SELECT h.id, l.address, m.message_id, m.sender, m.subject, m.date, h.reason,
                    h.held_at, h.decision
             FROM held_messages h JOIN messages m ON m.id = h.message_id
             JOIN lists l ON l.id = h.list_id"""


def _row(row: Any) -> HeldMessage:
    return HeldMessage(*row)


def pending(conn: Conn, list_id: int) -> list[HeldMessage]:
    cur = conn.execute(
        f"{_SELECT} WHERE h.list_id = ? AND h.decision IS NULL ORDER BY h.id", (list_id,)
    )
    return [_row(r) for r in cur.fetchall()]


def get(conn: Conn, held_id: int) -> tuple[HeldMessage, int, int] | None:
    """The held post, its message row id and its list id."""
    cur = conn.execute(
        "SELECT h.id, l.address, m.message_id, m.sender, m.subject, m.date, h.reason, h.held_at, "
        "h.decision, h.message_id, h.list_id FROM held_messages h "
        "JOIN messages m ON m.id = h.message_id JOIN lists l ON l.id = h.list_id WHERE h.id = ?",
        (held_id,),
    )
    row = cur.fetchone()
    return (_row(row[:9]), row[9], row[10]) if row else None


def decide(conn: Conn, held_id: int, decision: str, at: str, by: str, note: str) -> None:
    conn.execute(
        "UPDATE held_messages SET decision = ?, decided_at = ?, decided_by = ?, note = ? "
        "WHERE id = ?",
        (decision, at, by, note, held_id),
    )

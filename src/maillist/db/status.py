"""SQL for `maillist status`: counts and the oldest and latest troubles."""

from __future__ import annotations

from maillist.db.store import Conn


def scalar(conn: Conn, sql: str) -> int:
    cur = conn.execute(sql)
    row = cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def totals(conn: Conn) -> dict[str, int]:
    return {
        "lists": scalar(conn, "SELECT COUNT(*) FROM lists"),
        "people": scalar(conn, "SELECT COUNT(*) FROM people"),
        "subscriptions": scalar(conn, "SELECT COUNT(*) FROM subscriptions"),
        "messages": scalar(conn, "SELECT COUNT(*) FROM messages WHERE raw IS NOT NULL"),
        "held": scalar(conn, "SELECT COUNT(*) FROM held_messages WHERE decision IS NULL"),
        "delivery_failures": scalar(conn, "SELECT COUNT(*) FROM delivery_failures"),
    }


def oldest_open_batch(conn: Conn) -> str | None:
    cur = conn.execute(
        "SELECT MIN(created_at) FROM outbound_batches WHERE state IN ('pending', 'sending', 'deferred')"
    )
    row = cur.fetchone()
    return str(row[0]) if row and row[0] else None


def last_errors(conn: Conn, limit: int = 5) -> list[tuple[str, str, str]]:
    """(state, when the error happened, error) of the latest failed or deferred batches."""
    cur = conn.execute(
        "SELECT state, last_error_at, last_error FROM outbound_batches "
        "WHERE last_error <> '' ORDER BY last_error_at DESC, id DESC LIMIT ?",
        (limit,),
    )
    return [(r[0], r[1], r[2]) for r in cur.fetchall()]


def secret_present(conn: Conn) -> bool:
    return (
        scalar(conn, "SELECT COUNT(*) FROM site WHERE key = 'secret' AND length(value) >= 32") == 1
    )

"""SQL for sent_copies: a digest of each copy a list sent lately (mail/loops.py)."""

from __future__ import annotations

from collections.abc import Iterable

from maillist.db.store import Conn


def remember(conn: Conn, list_id: int, digests: Iterable[bytes], at: str) -> None:
    conn.executemany(
        "INSERT INTO sent_copies (list_id, digest, at) VALUES (?, ?, ?) "
        "ON CONFLICT (list_id, digest) DO UPDATE SET at = excluded.at",
        [(list_id, d, at) for d in digests],
    )


def forget(conn: Conn, before: str) -> int:
    return conn.execute("DELETE FROM sent_copies WHERE at < ?", (before,)).rowcount


def came_back(conn: Conn, list_id: int, digest: bytes) -> bool:
    """The body is that of a copy this list sent lately (mail/loops.py)."""
    return (
        conn.execute(
            "SELECT 1 FROM sent_copies WHERE list_id = ? AND digest = ?", (list_id, digest)
        ).fetchone()
        is not None
    )

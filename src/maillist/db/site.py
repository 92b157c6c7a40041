"""SQL for site-wide values (the secret that signs member tokens)."""

from __future__ import annotations

from maillist.db.store import Conn


def secret(conn: Conn) -> str:
    cur = conn.execute("SELECT value FROM site WHERE key = 'secret'")
    row = cur.fetchone()
    return str(row[0]) if row else ""

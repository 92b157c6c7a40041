"""SQL for the audit log of admin actions."""

from __future__ import annotations

from maillist.db.store import Conn
from maillist.models import AuditEntry


def record(conn: Conn, at: str, actor: str, action: str, target: str, detail: str = "") -> None:
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        (at, actor, action, target, detail),
    )


def recent(conn: Conn, limit: int) -> list[AuditEntry]:
    cur = conn.execute(
        "SELECT id, at, actor, action, target, detail FROM audit_log ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [AuditEntry(*row) for row in cur.fetchall()]

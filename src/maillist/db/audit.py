"""SQL for the audit log of admin actions."""

from __future__ import annotations

from maillist.db.connection import Tx
from maillist.models import AuditEntry


async def record(tx: Tx, at: str, actor: str, action: str, target: str, detail: str = "") -> None:
    await tx.execute(
        "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        (at, actor, action, target, detail),
    )


async def recent(tx: Tx, limit: int) -> list[AuditEntry]:
    async with tx.execute(
        "SELECT id, at, actor, action, target, detail FROM audit_log ORDER BY id DESC LIMIT ?",
        (limit,),
    ) as cur:
        return [AuditEntry(*row) for row in await cur.fetchall()]

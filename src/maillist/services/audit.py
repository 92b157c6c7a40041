"""Read the audit log of admin actions."""

from __future__ import annotations

from maillist.db import Database
from maillist.db import audit as db_audit
from maillist.models import AuditEntry


async def recent(db: Database, limit: int = 50) -> list[AuditEntry]:
    async with db.snapshot() as tx:
        return await db_audit.recent(tx, limit)

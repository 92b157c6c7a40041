"""Read the audit log of admin actions."""

from __future__ import annotations

from maillist.db import Store
from maillist.db import audit as db_audit
from maillist.models import AuditEntry


async def recent(db: Store, limit: int = 50) -> list[AuditEntry]:
    return await db.read(lambda conn: db_audit.recent(conn, limit))

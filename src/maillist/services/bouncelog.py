"""Recent bounces of a list, for `maillist bounces`."""

from __future__ import annotations

from maillist.db import Store
from maillist.db import bounces as db_bounces
from maillist.services.lists import require


async def recent(db: Store, list_address: str, limit: int = 100) -> list[db_bounces.Bounce]:
    return await db.read(
        lambda conn: db_bounces.recent(conn, require(conn, list_address).id, limit)
    )

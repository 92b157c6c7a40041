"""SQL for site-wide values (the secret that signs member tokens)."""

from __future__ import annotations

from maillist.db.connection import Tx


async def secret(tx: Tx) -> str:
    async with tx.execute("SELECT value FROM site WHERE key = 'secret'") as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else ""

"""SQL for `maillist status`: counts and the oldest and latest troubles."""

from __future__ import annotations

from maillist.db.connection import Tx


async def scalar(tx: Tx, sql: str) -> int:
    async with tx.execute(sql) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


async def totals(tx: Tx) -> dict[str, int]:
    return {
        "lists": await scalar(tx, "SELECT COUNT(*) FROM lists"),
        "people": await scalar(tx, "SELECT COUNT(*) FROM people"),
        "subscriptions": await scalar(tx, "SELECT COUNT(*) FROM subscriptions"),
        "messages": await scalar(tx, "SELECT COUNT(*) FROM messages WHERE raw IS NOT NULL"),
        "held": await scalar(tx, "SELECT COUNT(*) FROM held_messages WHERE decision IS NULL"),
        "delivery_failures": await scalar(tx, "SELECT COUNT(*) FROM delivery_failures"),
    }


async def oldest_open_batch(tx: Tx) -> str | None:
    async with tx.execute(
        "SELECT MIN(created_at) FROM outbound_batches WHERE state IN ('pending', 'sending', 'deferred')"
    ) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row and row[0] else None


async def last_errors(tx: Tx, limit: int = 5) -> list[tuple[str, str, str]]:
    """(state, when the error happened, error) of the latest failed or deferred batches."""
    async with tx.execute(
        "SELECT state, last_error_at, last_error FROM outbound_batches "
        "WHERE last_error <> '' ORDER BY last_error_at DESC, id DESC LIMIT ?",
        (limit,),
    ) as cur:
        return [(r[0], r[1], r[2]) for r in await cur.fetchall()]


async def secret_present(tx: Tx) -> bool:
    return (
        await scalar(tx, "SELECT COUNT(*) FROM site WHERE key = 'secret' AND length(value) >= 32")
        == 1
    )

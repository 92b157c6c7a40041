"""SQL for the people table: one row per address, site-wide."""

from __future__ import annotations

from collections.abc import Iterable

from maillist.db.connection import Tx
from maillist.models import Person


async def by_address(tx: Tx, address: str) -> Person | None:
    async with tx.execute(
        "SELECT id, address, name, created_at FROM people WHERE address = ?", (address,)
    ) as cur:
        row = await cur.fetchone()
    return Person(*row) if row else None


async def by_id(tx: Tx, person_id: int) -> Person | None:
    async with tx.execute(
        "SELECT id, address, name, created_at FROM people WHERE id = ?", (person_id,)
    ) as cur:
        row = await cur.fetchone()
    return Person(*row) if row else None


async def upsert_many(tx: Tx, people: Iterable[tuple[str, str]], at: str) -> None:
    """Create each (address, name) that is new; a non-empty name given replaces the stored one."""
    await tx.executemany(
        """INSERT INTO people (address, name, created_at) VALUES (?, ?, ?)
           ON CONFLICT (address) DO UPDATE SET name = excluded.name
           WHERE excluded.name <> '' AND excluded.name <> people.name""",
        ((address, name, at) for address, name in people),
    )


async def names_for(tx: Tx, addresses: list[str]) -> dict[str, str]:
    """Account names keyed by lower-cased address (only people with a name set)."""
    found: dict[str, str] = {}
    unique = sorted({a.lower() for a in addresses if a})
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        marks = ",".join("?" * len(chunk))
        async with tx.execute(
            f"SELECT lower(address), name FROM people WHERE address IN ({marks}) AND name <> ''",
            chunk,
        ) as cur:
            found.update({address: name for address, name in await cur.fetchall()})
    return found

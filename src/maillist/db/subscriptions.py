"""SQL for subscriptions: a person on a list, with role, delivery mode and status."""

from __future__ import annotations

from collections.abc import Iterable

from maillist.db.connection import Tx
from maillist.models import Member, Mode, NewMember, Role, Status


async def addresses_on(tx: Tx, list_id: int) -> set[str]:
    """Lower-cased addresses of everyone on the list (identity is case-insensitive, as in `people`)."""
    async with tx.execute(
        "SELECT lower(p.address) FROM subscriptions s JOIN people p ON p.id = s.person_id "
        "WHERE s.list_id = ?",
        (list_id,),
    ) as cur:
        return {row[0] for row in await cur.fetchall()}


async def insert_many(tx: Tx, list_id: int, members: Iterable[NewMember], at: str) -> None:
    """Subscribe people who already have a `people` row (see people.upsert_many)."""
    await tx.executemany(
        """INSERT INTO subscriptions (list_id, person_id, role, mode, created_at)
           SELECT ?, id, ?, ?, ? FROM people WHERE address = ?""",
        ((list_id, m.role.value, m.mode.value, at, m.address) for m in members),
    )


async def delete(tx: Tx, list_id: int, address: str) -> bool:
    cur = await tx.execute(
        "DELETE FROM subscriptions WHERE list_id = ? "
        "AND person_id = (SELECT id FROM people WHERE address = ?)",
        (list_id, address),
    )
    return cur.rowcount > 0


async def members(tx: Tx, list_id: int) -> list[Member]:
    """Everyone on the list with their site-wide badges, ordered by address."""
    badges: dict[int, list[str]] = {}
    async with tx.execute(
        """SELECT g.person_id, b.name FROM subscriptions s
           JOIN badge_grants g ON g.person_id = s.person_id
           JOIN badges b ON b.id = g.badge_id
           WHERE s.list_id = ? ORDER BY b.name""",
        (list_id,),
    ) as cur:
        for person_id, badge in await cur.fetchall():
            badges.setdefault(person_id, []).append(badge)
    async with tx.execute(
        """SELECT p.id, p.address, p.name, s.role, s.mode, s.status
           FROM subscriptions s JOIN people p ON p.id = s.person_id
           WHERE s.list_id = ? ORDER BY p.address""",
        (list_id,),
    ) as cur:
        rows = await cur.fetchall()
    return [
        Member(address, name, _ROLE[role], _MODE[mode], _STATUS[status], tuple(badges.get(pid, ())))
        for pid, address, name, role, mode, status in rows
    ]


# Plain dict look-ups: Enum(value) costs a microsecond a call, a second per 100,000-member listing.
_ROLE = {r.value: r for r in Role}
_MODE = {m.value: m for m in Mode}
_STATUS = {s.value: s for s in Status}


async def is_member(tx: Tx, list_id: int, address: str) -> bool:
    async with tx.execute(
        "SELECT 1 FROM subscriptions s JOIN people p ON p.id = s.person_id "
        "WHERE s.list_id = ? AND p.address = ?",
        (list_id, address),
    ) as cur:
        return await cur.fetchone() is not None


_FIELDS = frozenset({"role", "mode", "status", "receive_own"})


async def set_field(tx: Tx, list_id: int, address: str, name: str, value: object) -> bool:
    if name not in _FIELDS:  # the column name is interpolated: known names only
        raise ValueError(name)
    cur = await tx.execute(
        f"UPDATE subscriptions SET {name} = ? WHERE list_id = ? "
        "AND person_id = (SELECT id FROM people WHERE address = ?)",
        (value, list_id, address),
    )
    return cur.rowcount > 0

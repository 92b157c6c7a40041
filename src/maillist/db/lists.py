"""SQL for the lists table."""

from __future__ import annotations

from typing import Any

from maillist.db.connection import Tx
from maillist.models import ListSummary, MailingList, Posting

_COLUMNS = (
    "id, address, name, description, posting, subject_prefix, max_message_size, reply_to, "
    "personalize, web_url, created_at, batch_size, footer"
)
SETTABLE = frozenset(
    {
        "name",
        "description",
        "posting",
        "subject_prefix",
        "max_message_size",
        "reply_to",
        "personalize",
        "web_url",
        "batch_size",
        "footer",
    }
)


def _row(row: Any) -> MailingList:
    return MailingList(
        id=row[0],
        address=row[1],
        name=row[2],
        description=row[3],
        posting=Posting(row[4]),
        subject_prefix=row[5],
        max_message_size=row[6],
        reply_to=row[7],
        personalize=bool(row[8]),
        web_url=row[9],
        created_at=row[10],
        batch_size=row[11],
        footer=bool(row[12]),
    )


async def insert(
    tx: Tx,
    address: str,
    name: str,
    description: str,
    posting: Posting,
    subject_prefix: str,
    at: str,
) -> MailingList:
    async with tx.execute(
        f"INSERT INTO lists (address, name, description, posting, subject_prefix, created_at) "
        f"VALUES (?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
        (address, name, description, posting.value, subject_prefix, at),
    ) as cur:
        row = await cur.fetchone()
    assert row is not None
    return _row(row)


async def by_address(tx: Tx, address: str) -> MailingList | None:
    async with tx.execute(f"SELECT {_COLUMNS} FROM lists WHERE address = ?", (address,)) as cur:
        row = await cur.fetchone()
    return _row(row) if row else None


async def all_lists(tx: Tx) -> list[ListSummary]:
    async with tx.execute(
        f"""SELECT {", ".join("l." + c.strip() for c in _COLUMNS.split(","))},
                   COUNT(s.person_id),
                   COALESCE(SUM(s.role = 'moderator'), 0),
                   COALESCE(SUM(s.role = 'owner'), 0)
            FROM lists l LEFT JOIN subscriptions s ON s.list_id = l.id
            GROUP BY l.id ORDER BY l.address"""
    ) as cur:
        rows = await cur.fetchall()
    return [ListSummary(_row(r), r[13], r[14], r[15]) for r in rows]


async def summary(tx: Tx, mlist: MailingList) -> ListSummary:
    async with tx.execute(
        """SELECT COUNT(*), COALESCE(SUM(role = 'moderator'), 0), COALESCE(SUM(role = 'owner'), 0)
           FROM subscriptions WHERE list_id = ?""",
        (mlist.id,),
    ) as cur:
        row = await cur.fetchone()
    assert row is not None
    return ListSummary(mlist, row[0], row[1], row[2])


async def set_option(tx: Tx, list_id: int, column: str, value: object) -> None:
    if column not in SETTABLE:  # the column name is interpolated: only known names get here
        raise ValueError(column)
    await tx.execute(f"UPDATE lists SET {column} = ? WHERE id = ?", (value, list_id))


async def delete(tx: Tx, list_id: int) -> None:
    await tx.execute("DELETE FROM lists WHERE id = ?", (list_id,))


async def address_of(tx: Tx, list_id: int) -> str:
    async with tx.execute("SELECT address FROM lists WHERE id = ?", (list_id,)) as cur:
        row = await cur.fetchone()
    return str(row[0]) if row else "?"

"""SQL for the lists table."""

from __future__ import annotations

from typing import Any

from maillist.db.store import Conn
from maillist.models import ListSummary, MailingList, Posting

_COLUMNS = (
    "id, address, name, description, posting, subject_prefix, max_message_size, reply_to, "
    "personalize, web_url, created_at, batch_size, footer, subscription, token_days, "
    "bounce_threshold, bounce_stale_days, bounce_warnings, dmarc, unauthenticated, archive, "
    "digest_hour, digest_size, badges"
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
        "subscription",
        "token_days",
        "bounce_threshold",
        "bounce_stale_days",
        "bounce_warnings",
        "dmarc",
        "unauthenticated",
        "archive",
        "digest_hour",
        "digest_size",
        "badges",
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
        subscription=row[13],
        token_days=row[14],
        bounce_threshold=row[15],
        bounce_stale_days=row[16],
        bounce_warnings=row[17],
        dmarc=row[18],
        unauthenticated=row[19],
        archive=row[20],
        digest_hour=row[21],
        digest_size=row[22],
        badges=row[23],
    )


def insert(
    conn: Conn,
    address: str,
    name: str,
    description: str,
    posting: Posting,
    subject_prefix: str,
    at: str,
) -> MailingList:
    cur = conn.execute(
        f"INSERT INTO lists (address, name, description, posting, subject_prefix, created_at) "
        f"VALUES (?, ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
        (address, name, description, posting.value, subject_prefix, at),
    )
    row = cur.fetchone()
    assert row is not None
    return _row(row)


def by_id(conn: Conn, list_id: int) -> MailingList | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM lists WHERE id = ?", (list_id,)).fetchone()
    return _row(row) if row else None


def by_address(conn: Conn, address: str) -> MailingList | None:
    cur = conn.execute(f"SELECT {_COLUMNS} FROM lists WHERE address = ?", (address,))
    row = cur.fetchone()
    return _row(row) if row else None


def all_lists(conn: Conn) -> list[ListSummary]:
    cur = conn.execute(
        f"""SELECT {", ".join("l." + c.strip() for c in _COLUMNS.split(","))},
                   COUNT(s.person_id),
                   COUNT(*) FILTER (WHERE s.role = 'moderator'),
                   COUNT(*) FILTER (WHERE s.role = 'owner')
            FROM lists l LEFT JOIN subscriptions s ON s.list_id = l.id
            GROUP BY l.id ORDER BY l.address"""
    )
    rows = cur.fetchall()
    width = len(_COLUMNS.split(","))
    return [ListSummary(_row(r), *r[width : width + 3]) for r in rows]


def summary(conn: Conn, mlist: MailingList) -> ListSummary:
    cur = conn.execute(
        """SELECT COUNT(*), COUNT(*) FILTER (WHERE role = 'moderator'),
                  COUNT(*) FILTER (WHERE role = 'owner')
           FROM subscriptions WHERE list_id = ?""",
        (mlist.id,),
    )
    row = cur.fetchone()
    assert row is not None
    return ListSummary(mlist, row[0], row[1], row[2])


def set_option(conn: Conn, list_id: int, column: str, value: object) -> None:
    if column not in SETTABLE:  # the column name is interpolated: only known names get here
        raise ValueError(column)
    conn.execute(f"UPDATE lists SET {column} = ? WHERE id = ?", (value, list_id))


def delete(conn: Conn, list_id: int) -> None:
    conn.execute("DELETE FROM lists WHERE id = ?", (list_id,))


def address_of(conn: Conn, list_id: int) -> str:
    cur = conn.execute("SELECT address FROM lists WHERE id = ?", (list_id,))
    row = cur.fetchone()
    return str(row[0]) if row else "?"

"""SQL for the web archive: threads by activity, a thread's posts, a post, a month, search,
the newest posts (feeds), and what the archive needs of people and badges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from maillist.db import engine
from maillist.db.store import Conn

_VISIBLE = "('accept', 'approved')"


@dataclass(frozen=True, slots=True)
class ThreadRow:
    id: int
    subject: str
    started_at: str
    last_activity_at: str
    posts: int
    participants: int
    starter: str  # the first visible post's sender ('' if none)
    first_row: int  # that post's row
    starter_name: str = ""  # the display name its From gave


@dataclass(frozen=True, slots=True)
class PostRow:
    """A post as the archive shows it; `placeholder` for one the archive never received (or
    does not show: held, rejected)."""

    id: int
    message_id: str
    parent_id: int | None
    thread_id: int | None
    sender: str
    sender_name: str
    subject: str
    date: str
    placeholder: bool
    verified: bool
    verdict: str
    received: bool = True  # False: a placeholder for an id only referred to


_POST = (
    "m.id, m.message_id, m.parent_id, m.thread_id, m.sender, m.sender_name, m.subject, m.date, "
    f"m.raw IS NULL OR m.verdict NOT IN {_VISIBLE}, m.verified, m.verdict, m.raw IS NOT NULL"
)


def _post(row: Sequence[Any]) -> PostRow:
    return PostRow(
        int(row[0]), str(row[1]), None if row[2] is None else int(row[2]),
        None if row[3] is None else int(row[3]), str(row[4]), str(row[5]), str(row[6]),
        str(row[7]), bool(row[8]), bool(row[9]), str(row[10]), bool(row[11]),
    )  # fmt: skip


def count_threads(conn: Conn, list_id: int) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM threads t WHERE t.list_id = ? AND EXISTS (SELECT 1 FROM messages m "
        f"WHERE m.thread_id = t.id AND m.kind = 'post' AND m.verdict IN {_VISIBLE})",
        (list_id,),
    ).fetchone()
    return int(row[0])


def threads(conn: Conn, list_id: int, offset: int, limit: int) -> list[ThreadRow]:
    """Threads with a delivered post, latest activity first."""
    rows = conn.execute(
        f"""SELECT t.id, t.subject, t.started_at, t.last_activity_at,
                (SELECT COUNT(*) FROM messages m WHERE m.thread_id = t.id
                    AND m.verdict IN {_VISIBLE}),
                (SELECT COUNT(DISTINCT lower(m.sender)) FROM messages m WHERE m.thread_id = t.id
                    AND m.verdict IN {_VISIBLE}),
                (SELECT m.id FROM messages m WHERE m.thread_id = t.id
                    AND m.verdict IN {_VISIBLE} ORDER BY m.date, m.id LIMIT 1) AS first
            FROM threads t
            WHERE t.list_id = ? AND EXISTS (SELECT 1 FROM messages m WHERE m.thread_id = t.id
                AND m.kind = 'post' AND m.verdict IN {_VISIBLE})
            ORDER BY t.last_activity_at DESC, t.id DESC LIMIT ? OFFSET ?""",
        (list_id, limit, offset),
    ).fetchall()
    firsts = {int(r[6]) for r in rows if r[6] is not None}
    senders = {
        row[0]: (str(row[1]), str(row[2]))
        for row in conn.execute(
            "SELECT id, sender, sender_name FROM messages "
            f"WHERE id IN ({','.join('?' * len(firsts))})",
            tuple(firsts),
        ).fetchall()
    }
    return [
        ThreadRow(int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), int(r[5]),
                  senders.get(r[6], ("", ""))[0], int(r[6] or 0), senders.get(r[6], ("", ""))[1])
        for r in rows
    ]  # fmt: skip


def thread(conn: Conn, list_id: int, thread_id: int) -> tuple[str, list[PostRow]] | None:
    """(subject, every post and placeholder of the thread in date order)."""
    head = conn.execute(
        "SELECT subject FROM threads WHERE id = ? AND list_id = ?", (thread_id, list_id)
    ).fetchone()
    if head is None:
        return None
    rows = conn.execute(
        f"SELECT {_POST} FROM messages m WHERE m.thread_id = ? AND m.kind = 'post' "
        "ORDER BY m.date, m.id",
        (thread_id,),
    ).fetchall()
    return str(head[0]), [_post(r) for r in rows]


def post(conn: Conn, list_id: int, message_id: str) -> PostRow | None:
    """The delivered post with this Message-ID on this list."""
    row = conn.execute(
        f"SELECT {_POST} FROM messages m WHERE m.list_id = ? AND m.kind = 'post' "
        f"AND m.message_id = ? AND m.claimed = 1 AND m.verdict IN {_VISIBLE}",
        (list_id, message_id),
    ).fetchone()
    return _post(row) if row else None


def raws(conn: Conn, row_ids: Sequence[int]) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    ids = list(row_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        cur = conn.execute(
            f"SELECT id, raw FROM messages WHERE id IN ({','.join('?' * len(chunk))}) "
            "AND raw IS NOT NULL",
            chunk,
        )
        found.update({int(r[0]): bytes(r[1]) for r in cur.fetchall()})
    return found


def month(conn: Conn, list_id: int, start: str, end: str) -> list[PostRow]:
    rows = conn.execute(
        f"SELECT {_POST} FROM messages m WHERE m.list_id = ? AND m.kind = 'post' "
        f"AND m.verdict IN {_VISIBLE} AND m.date >= ? AND m.date < ? ORDER BY m.date, m.id",
        (list_id, start, end),
    ).fetchall()
    return [_post(r) for r in rows]


def months(conn: Conn, list_id: int) -> list[tuple[str, int]]:
    """('YYYY-MM', posts) newest first."""
    rows = conn.execute(
        f"SELECT substr(date, 1, 7), COUNT(*) FROM messages WHERE list_id = ? AND kind = 'post' "
        f"AND verdict IN {_VISIBLE} GROUP BY 1 ORDER BY 1 DESC",
        (list_id,),
    ).fetchall()
    return [(str(r[0]), int(r[1])) for r in rows]


def latest(conn: Conn, list_id: int, limit: int, thread_id: int | None = None) -> list[PostRow]:
    where = "AND m.thread_id = ?" if thread_id is not None else ""
    args: tuple[object, ...] = (list_id, thread_id, limit) if thread_id is not None else (
        list_id, limit,
    )  # fmt: skip
    rows = conn.execute(
        f"SELECT {_POST} FROM messages m WHERE m.list_id = ? AND m.kind = 'post' "
        f"AND m.verdict IN {_VISIBLE} {where} ORDER BY m.received_at DESC, m.id DESC LIMIT ?",
        args,
    ).fetchall()
    return [_post(r) for r in rows]


_HEADLINE = (
    "StartSel=\x02, StopSel=\x03, MaxWords=16, MinWords=6, MaxFragments=1, FragmentDelimiter=…"
)


@dataclass(frozen=True, slots=True)
class Hit:
    post: PostRow
    snippet: str  # with \x02 ... \x03 around the matched terms


SEARCH_SECONDS = 2.0


def search(conn: Conn, list_id: int, words: Sequence[str], limit: int) -> list[Hit]:
    """Delivered posts of the list with all these words, best first: FTS5's bm25 and snippet on
    SQLite, the tsvector's rank and ts_headline on PostgreSQL; stopped at SEARCH_SECONDS
    (StoreTimeout)."""
    with engine.time_limit(conn, SEARCH_SECONDS):
        return _search(conn, list_id, words, limit)


def _search(conn: Conn, list_id: int, words: Sequence[str], limit: int) -> list[Hit]:
    if engine.postgres(conn):
        rows = conn.execute(
            f"SELECT {_POST}, ts_headline('english', s.body, q, ?) "
            "FROM search s JOIN messages m ON m.id = s.rowid, plainto_tsquery('english', ?) q "
            f"WHERE s.document @@ q AND m.list_id = ? AND m.verdict IN {_VISIBLE} "
            "ORDER BY ts_rank(s.document, q) DESC, m.id DESC LIMIT ?",
            (_HEADLINE, " ".join(words), list_id, limit),
        ).fetchall()
        return [Hit(_post(r[:12]), str(r[12])) for r in rows]
    match = " ".join('"' + w.replace('"', '""') + '"' for w in words)
    rows = conn.execute(
        f"SELECT {_POST}, snippet(search, 1, char(2), char(3), '…', 16) FROM search "
        "JOIN messages m ON m.id = search.rowid "
        f"WHERE search MATCH ? AND m.list_id = ? AND m.verdict IN {_VISIBLE} "
        "ORDER BY rank LIMIT ?",
        (match, list_id, limit),
    ).fetchall()
    return [Hit(_post(r[:12]), str(r[12])) for r in rows]


@dataclass(frozen=True, slots=True)
class Author:
    person_id: int
    name: str
    has_picture: bool


def authors(conn: Conn, addresses: Sequence[str]) -> dict[str, Author]:
    """People by lower-cased address."""
    found: dict[str, Author] = {}
    unique = sorted({a.lower() for a in addresses if a})
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        cur = conn.execute(
            "SELECT lower(address), id, name, picture IS NOT NULL FROM people "
            f"WHERE address IN ({','.join('?' * len(chunk))})",
            chunk,
        )
        found.update({str(r[0]): Author(int(r[1]), str(r[2]), bool(r[3])) for r in cur})
    return found


def badge_styles(conn: Conn) -> dict[str, tuple[str, str]]:
    """Badge name -> (colour, icon)."""
    rows = conn.execute("SELECT name, colour, icon FROM badges").fetchall()
    return {str(r[0]): (str(r[1]), str(r[2])) for r in rows}


def picture(conn: Conn, person_id: int) -> tuple[bytes, str] | None:
    row = conn.execute(
        "SELECT picture, picture_type FROM people WHERE id = ? AND picture IS NOT NULL",
        (person_id,),
    ).fetchone()
    return (bytes(row[0]), str(row[1])) if row else None


def unindexed(conn: Conn, limit: int) -> list[tuple[int, bytes, str, str]]:
    """Posts stored before search existed: (row, raw, subject, author) to index."""
    rows = conn.execute(
        "SELECT m.id, m.raw, m.subject, trim(coalesce(nullif(p.name, ''), m.sender_name) || ' ' "
        "|| m.sender) FROM messages m LEFT JOIN people p ON p.address = m.sender "
        "WHERE m.kind = 'post' AND m.raw IS NOT NULL "
        "AND m.id NOT IN (SELECT rowid FROM search) ORDER BY m.id LIMIT ?",
        (limit,),
    ).fetchall()
    return [(int(r[0]), bytes(r[1]), str(r[2]), str(r[3])) for r in rows]


@dataclass(frozen=True, slots=True)
class DigestPost:
    id: int
    sender: str
    subject: str
    date: str
    verified: bool
    thread_subject: str


def posts(conn: Conn, rows: Sequence[int]) -> list[DigestPost]:
    """Posts by row, in date order, with their thread's subject (a digest's contents)."""
    found: list[DigestPost] = []
    ids = list(rows)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        cur = conn.execute(
            "SELECT m.id, m.sender, m.subject, m.date, m.verified, coalesce(t.subject, m.subject) "
            "FROM messages m LEFT JOIN threads t ON t.id = m.thread_id "
            f"WHERE m.id IN ({','.join('?' * len(chunk))})",
            chunk,
        )
        found += [DigestPost(int(r[0]), str(r[1]), str(r[2]), str(r[3]), bool(r[4]), str(r[5]))
                  for r in cur]  # fmt: skip
    return sorted(found, key=lambda p: (p.date, p.id))


def author_names(conn: Conn, list_id: int) -> dict[str, str]:
    """The display name each sender's latest archived post on the list gave, by lower-cased
    address (only senders who gave one)."""
    cur = conn.execute(
        "SELECT lower(sender), sender_name FROM messages WHERE list_id = ? AND sender_name <> '' "
        "AND sender IS NOT NULL ORDER BY date, id",
        (list_id,),
    )
    return {str(sender): str(name) for sender, name in cur.fetchall()}

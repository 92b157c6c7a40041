"""SQL of the ingest path (synchronous, run in db/writer.py's thread): messages, placeholders,
threads, held rows and fan-out jobs, as one message is stored, threaded and decided."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from maillist.db import engine
from maillist.db.store import Conn


@dataclass(frozen=True, slots=True)
class Known:
    """A post row the list already has for a Message-ID: a real message or a placeholder."""

    row_id: int
    thread_id: int | None
    placeholder: bool
    verdict: str
    parent: str | None = None  # the parent's Message-ID (containers() only)


def lookup(conn: Conn, list_id: int, kind: str, message_ids: Sequence[str]) -> dict[str, Known]:
    """The rows that claim these ids (the message itself, its references), in one query: a
    delivered post or a placeholder, never a held or discarded post."""
    if not message_ids:
        return {}
    marks = ",".join("?" * len(message_ids))
    rows = conn.execute(
        f"SELECT message_id, id, thread_id, raw IS NULL, verdict FROM messages "
        f"WHERE list_id = ? AND kind = ? AND claimed = 1 AND message_id IN ({marks})",
        (list_id, kind, *message_ids),
    ).fetchall()
    return {r[0]: Known(r[1], r[2], bool(r[3]), r[4]) for r in rows}


def unclaimed_copy(conn: Conn, list_id: int, message_id: str, sender: str) -> Known | None:
    """A held or discarded post with this id from this same sender: the same post sent again."""
    row = conn.execute(
        "SELECT id, thread_id, verdict FROM messages WHERE list_id = ? AND kind = 'post' "
        "AND claimed = 0 AND message_id = ? AND sender = ? ORDER BY id LIMIT 1",
        (list_id, message_id, sender),
    ).fetchone()
    return Known(row[0], row[1], False, row[2]) if row else None


@dataclass(frozen=True, slots=True)
class PostFacts:
    """What storing a post needs to know before it writes anything."""

    containers: dict[str, Known]  # the post's own id, its references and all their ancestors
    is_member: bool  # the sender is subscribed to the list
    came_back: bool  # the body is that of a copy this list sent lately (mail/loops.py)
    author: str | None  # the sender's account name


def post_facts(
    conn: Conn, list_id: int, message_ids: Sequence[str], sender: str | None, digest: bytes | None
) -> PostFacts:
    """One statement (one round trip to PostgreSQL): the sender's facts, on every row beside
    the containers of `message_ids` and of all their ancestors (by Message-ID, for threading:
    threads.place), or on a row of their own when there are none."""
    marks = ",".join("?" * len(message_ids))
    rows = conn.execute(
        f"""WITH RECURSIVE up(id) AS (
                SELECT id FROM messages WHERE list_id = ? AND kind = 'post' AND claimed = 1
                                          AND message_id IN ({marks})
                UNION
                SELECT m.parent_id FROM messages m JOIN up ON m.id = up.id
                WHERE m.parent_id IS NOT NULL
            )
            SELECT f.member, f.back, f.author,
                   c.id, c.message_id, c.thread_id, c.placeholder, c.verdict, c.parent
            FROM (SELECT EXISTS (SELECT 1 FROM subscriptions s JOIN people p
                                 ON p.id = s.person_id WHERE s.list_id = ? AND p.address = ?)
                         AS member,
                         EXISTS (SELECT 1 FROM sent_copies WHERE list_id = ? AND digest = ?)
                         AS back,
                         (SELECT name FROM people WHERE address = ?) AS author) f
            LEFT JOIN (SELECT m.id, m.message_id, m.thread_id, m.raw IS NULL AS placeholder,
                              m.verdict, p.message_id AS parent
                       FROM up JOIN messages m ON m.id = up.id
                       LEFT JOIN messages p ON p.id = m.parent_id
                       LIMIT 10000) c ON 1 = 1""",
        (list_id, *message_ids, list_id, sender or "", list_id, digest or None, sender or ""),
    ).fetchall()
    member, back, author = rows[0][:3]
    containers = {r[4]: Known(r[3], r[5], bool(r[6]), r[7], r[8]) for r in rows if r[3] is not None}
    return PostFacts(containers, bool(member), bool(back), author)


def set_parent(conn: Conn, row_id: int, parent_row: int | None) -> None:
    engine.defer(conn, "UPDATE messages SET parent_id = ? WHERE id = ?", (parent_row, row_id))


def insert_message(
    conn: Conn, list_id: int, kind: str, message_id: str, fields: dict[str, Any]
) -> int:
    columns = ["list_id", "kind", "message_id", *fields]
    return engine.insert(conn, "messages", columns, (list_id, kind, message_id, *fields.values()))


_UPDATABLE = frozenset(
    {
        "claimed", "thread_id", "parent_id", "envelope_from", "recipient", "sender", "sender_name", "subject",
        "date", "in_reply_to", "refs", "raw", "size", "received_at", "verdict", "reasons",
        "auth", "author_policy", "verified",
    }
)  # fmt: skip


def update_message(conn: Conn, row_id: int, fields: dict[str, Any]) -> None:
    if not fields.keys() <= _UPDATABLE:  # column names are interpolated: known names only
        raise ValueError(sorted(fields.keys() - _UPDATABLE))
    assignments = ", ".join(f"{name} = ?" for name in fields)
    engine.defer(
        conn, f"UPDATE messages SET {assignments} WHERE id = ?", (*fields.values(), row_id)
    )


def insert_placeholder(conn: Conn, list_id: int, message_id: str, thread_id: int) -> int:
    columns = ("list_id", "kind", "message_id", "thread_id")
    return engine.insert(conn, "messages", columns, (list_id, "post", message_id, thread_id))


def create_thread(conn: Conn, list_id: int, subject: str, key: str, at: str) -> int:
    columns = ("list_id", "subject", "subject_key", "started_at", "last_activity_at")
    return engine.insert(conn, "threads", columns, (list_id, subject, key, at, at))


def merge_threads(conn: Conn, into: int, source: int) -> None:
    """Move every message of `source` into `into`, keeping the later activity, and drop `source`."""
    engine.defer(conn, "UPDATE messages SET thread_id = ? WHERE thread_id = ?", (into, source))
    engine.defer(
        conn,
        "UPDATE threads SET last_activity_at = (SELECT MAX(t.last_activity_at) FROM threads t "
        "WHERE t.id IN (threads.id, ?)) WHERE id = ?",
        (source, into),
    )
    engine.defer(conn, "DELETE FROM threads WHERE id = ?", (source,))


def touch_thread(
    conn: Conn, thread_id: int, at: str, subject: str, key: str, *, rename: bool
) -> None:
    """Record activity; name the thread after this message if it is the root (`rename`) or if
    the thread has no name yet (its root is still a placeholder)."""
    engine.defer(
        conn,
        """UPDATE threads SET
               last_activity_at = CASE WHEN last_activity_at < ? THEN ? ELSE last_activity_at END,
               subject = CASE WHEN ? <> 0 OR subject_key = '' THEN ? ELSE subject END,
               subject_key = CASE WHEN ? <> 0 OR subject_key = '' THEN ? ELSE subject_key END
           WHERE id = ?""",
        (at, at, rename, subject, rename, key, thread_id),
    )


def thread_root(conn: Conn, thread_id: int) -> int | None:
    row = conn.execute(
        "SELECT id FROM messages WHERE thread_id = ? AND parent_id IS NULL ORDER BY id LIMIT 1",
        (thread_id,),
    ).fetchone()
    return int(row[0]) if row else None


def recent_thread_by_subject(conn: Conn, list_id: int, key: str, since: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM threads WHERE list_id = ? AND subject_key = ? AND last_activity_at >= ? "
        "ORDER BY last_activity_at DESC LIMIT 1",
        (list_id, key, since),
    ).fetchone()
    return int(row[0]) if row else None


def hold(conn: Conn, message_row: int, list_id: int, reason: str, at: str) -> int:
    row = conn.execute(
        "INSERT INTO held_messages (message_id, list_id, reason, held_at) VALUES (?, ?, ?, ?) "
        "RETURNING id",
        (message_row, list_id, reason, at),
    ).fetchone()
    return int(row[0])


SearchEntry = tuple[int, str, str, str]  # (row, subject, body text, author)


def index_posts(conn: Conn, entries: list[SearchEntry]) -> None:
    """The posts' search entries (rowid = the post's row): FTS5 on SQLite, a row whose tsvector
    PostgreSQL computes on PostgreSQL."""
    if engine.postgres(conn):  # one statement for the batch, sent with the COMMIT
        latest = list({entry[0]: entry for entry in entries}.values())
        rows = ", ".join(["(?, ?, ?, ?)"] * len(latest))
        engine.defer(
            conn,
            f"INSERT INTO search (rowid, subject, body, author) VALUES {rows} "
            "ON CONFLICT (rowid) DO UPDATE SET subject = excluded.subject, "
            "body = excluded.body, author = excluded.author",
            [value for entry in latest for value in entry],
        )
        return
    conn.executemany(
        "INSERT OR REPLACE INTO search (rowid, subject, body, author) VALUES (?, ?, ?, ?)",
        entries,
    )

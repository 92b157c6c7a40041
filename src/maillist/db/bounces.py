"""SQL for bounces (each one as understood) and the members' bounce scores."""

from __future__ import annotations

from dataclasses import dataclass

from maillist.db import engine
from maillist.db.store import Conn


@dataclass(frozen=True, slots=True)
class Bounce:
    member: str
    found: str
    kind: str
    status: str
    diagnostic: str
    scored: bool
    at: str


@dataclass(frozen=True, slots=True)
class Score:
    score: float
    last_bounce_at: str
    status: str
    probe_sent_at: str = ""  # the score reached the threshold: a probe went out then


def record(conn: Conn, list_id: int, message_row: int, bounce: Bounce) -> None:
    conn.execute(
        "INSERT INTO bounces (list_id, message_row, member, found, kind, status, diagnostic, "
        "scored, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (list_id, message_row, bounce.member, bounce.found, bounce.kind, bounce.status[:40],
         bounce.diagnostic[:500], int(bounce.scored), bounce.at),
    )  # fmt: skip


def recent(conn: Conn, list_id: int, limit: int) -> list[Bounce]:
    rows = conn.execute(
        "SELECT member, found, kind, status, diagnostic, scored, at FROM bounces "
        "WHERE list_id = ? ORDER BY id DESC LIMIT ?",
        (list_id, limit),
    ).fetchall()
    return [Bounce(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]


def score_of(conn: Conn, list_id: int, address: str) -> Score | None:
    """The member's score, locked until the transaction ends (the new score is computed from
    it: two bounces at two processes add up, neither overwrites the other)."""
    row = conn.execute(
        "SELECT s.bounce_score, s.last_bounce_at, s.status, s.probe_sent_at FROM subscriptions s "
        "JOIN people p ON p.id = s.person_id WHERE s.list_id = ? AND p.address = ?"
        + engine.for_update(conn),
        (list_id, address),
    ).fetchone()
    return Score(float(row[0]), str(row[1]), str(row[2]), str(row[3])) if row else None


def probe_sent(conn: Conn, list_id: int, address: str, at: str) -> None:
    """`at` '' clears it (the probe came through, or delivery was disabled)."""
    conn.execute(
        "UPDATE subscriptions SET probe_sent_at = ? WHERE list_id = ? "
        "AND person_id = (SELECT id FROM people WHERE address = ?)",
        (at, list_id, address),
    )


def probed_before(conn: Conn, list_id: int, before: str) -> list[str]:
    """Enabled members whose probe went out before `before` and has not bounced since."""
    rows = conn.execute(
        "SELECT p.address FROM subscriptions s JOIN people p ON p.id = s.person_id "
        "WHERE s.list_id = ? AND s.status = 'enabled' AND s.probe_sent_at <> '' "
        "AND s.probe_sent_at < ? ORDER BY p.address",
        (list_id, before),
    ).fetchall()
    return [str(r[0]) for r in rows]


def set_score(conn: Conn, list_id: int, address: str, score: float, at: str) -> None:
    conn.execute(
        "UPDATE subscriptions SET bounce_score = ?, last_bounce_at = ? WHERE list_id = ? "
        "AND person_id = (SELECT id FROM people WHERE address = ?)",
        (score, at, list_id, address),
    )


def disable(conn: Conn, list_id: int, address: str, reason: str) -> None:
    conn.execute(
        "UPDATE subscriptions SET status = 'disabled', disabled_reason = ?, probe_sent_at = '' "
        "WHERE list_id = ? "
        "AND person_id = (SELECT id FROM people WHERE address = ?)",
        (reason, list_id, address),
    )


@dataclass(frozen=True, slots=True)
class Disabled:
    """A member whose delivery bounces disabled, and where the warnings stand."""

    address: str
    person_id: int
    warnings_sent: int
    last_warning_at: str
    probe_bounced: bool


def disabled_by_bounces(conn: Conn, list_id: int) -> list[Disabled]:
    """The members bounces disabled; the list's review is this transaction's until it ends
    (several processes: one reviews, the next sees what it did)."""
    engine.exclusive(conn, f"bounce-review:{list_id}")
    rows = conn.execute(
        "SELECT p.address, p.id, s.warnings_sent, s.last_warning_at, s.probe_bounced "
        "FROM subscriptions s JOIN people p ON p.id = s.person_id "
        "WHERE s.list_id = ? AND s.status = 'disabled' AND s.disabled_reason = 'bounces' "
        "ORDER BY p.address",
        (list_id,),
    ).fetchall()
    return [Disabled(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]


def warned(conn: Conn, list_id: int, address: str, at: str) -> int:
    """One more warning (and probe) sent now; returns how many have been."""
    row = conn.execute(
        "UPDATE subscriptions SET warnings_sent = warnings_sent + 1, last_warning_at = ?, "
        "probe_bounced = 0 WHERE list_id = ? AND person_id = (SELECT id FROM people WHERE "
        "address = ?) RETURNING warnings_sent",
        (at, list_id, address),
    ).fetchone()
    return int(row[0]) if row else 0


def probe_bounced(conn: Conn, list_id: int, person_id: int) -> bool:
    cur = conn.execute(
        "UPDATE subscriptions SET probe_bounced = 1 WHERE list_id = ? AND person_id = ? "
        "AND status = 'disabled'",
        (list_id, person_id),
    )
    return cur.rowcount > 0


def enable(conn: Conn, list_id: int, address: str) -> None:
    conn.execute(
        "UPDATE subscriptions SET status = 'enabled', disabled_reason = '', bounce_score = 0, "
        "last_bounce_at = '', warnings_sent = 0, last_warning_at = '', probe_bounced = 0, "
        "probe_sent_at = '' "
        "WHERE list_id = ? AND person_id = (SELECT id FROM people WHERE address = ?)",
        (list_id, address),
    )


def last_row(conn: Conn, list_id: int, address: str) -> int | None:
    """The message that brought the member's latest bounce (what a warning is about)."""
    row = conn.execute(
        "SELECT message_row FROM bounces WHERE list_id = ? AND member = ? ORDER BY id DESC LIMIT 1",
        (list_id, address),
    ).fetchone()
    return int(row[0]) if row else None


def author_policy(conn: Conn, list_id: int, message_id: str) -> str:
    """The DMARC policy of the author's domain of a post the list sent (by its Message-ID)."""
    row = conn.execute(
        "SELECT author_policy FROM messages WHERE list_id = ? AND message_id = ? AND claimed = 1",
        (list_id, message_id),
    ).fetchone()
    return str(row[0]) if row else ""

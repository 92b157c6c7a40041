"""SQL for bounces (each one as understood) and the members' bounce scores."""

from __future__ import annotations

from dataclasses import dataclass

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
    row = conn.execute(
        "SELECT s.bounce_score, s.last_bounce_at, s.status FROM subscriptions s "
        "JOIN people p ON p.id = s.person_id WHERE s.list_id = ? AND p.address = ?",
        (list_id, address),
    ).fetchone()
    return Score(float(row[0]), str(row[1]), str(row[2])) if row else None


def set_score(conn: Conn, list_id: int, address: str, score: float, at: str) -> None:
    conn.execute(
        "UPDATE subscriptions SET bounce_score = ?, last_bounce_at = ? WHERE list_id = ? "
        "AND person_id = (SELECT id FROM people WHERE address = ?)",
        (score, at, list_id, address),
    )


def disable(conn: Conn, list_id: int, address: str, reason: str) -> None:
    conn.execute(
        "UPDATE subscriptions SET status = 'disabled', disabled_reason = ? WHERE list_id = ? "
        "AND person_id = (SELECT id FROM people WHERE address = ?)",
        (reason, list_id, address),
    )

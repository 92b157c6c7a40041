"""SQL for subscriptions: a person on a list, with role, delivery mode and status."""

from __future__ import annotations

from collections.abc import Iterable

from maillist.db.store import Conn
from maillist.models import Member, Mode, NewMember, Role, Status


def addresses_on(conn: Conn, list_id: int) -> set[str]:
    """Lower-cased addresses of everyone on the list (identity is case-insensitive, as in `people`)."""
    cur = conn.execute(
        "SELECT lower(p.address) FROM subscriptions s JOIN people p ON p.id = s.person_id "
        "WHERE s.list_id = ?",
        (list_id,),
    )
    return {row[0] for row in cur.fetchall()}


def insert_many(conn: Conn, list_id: int, members: Iterable[NewMember], at: str) -> None:
    """Subscribe people who already have a `people` row (see people.upsert_many)."""
    conn.executemany(
        """INSERT INTO subscriptions (list_id, person_id, role, mode, created_at, domain)
           SELECT ?, id, ?, ?, ?, lower(substr(address, instr(address, '@') + 1))
           FROM people WHERE address = ?""",
        ((list_id, m.role.value, m.mode.value, at, m.address) for m in members),
    )


def delete(conn: Conn, list_id: int, address: str) -> bool:
    cur = conn.execute(
        "DELETE FROM subscriptions WHERE list_id = ? "
        "AND person_id = (SELECT id FROM people WHERE address = ?)",
        (list_id, address),
    )
    return cur.rowcount > 0


def members(conn: Conn, list_id: int) -> list[Member]:
    """Everyone on the list with their site-wide badges, ordered by address."""
    badges: dict[int, list[str]] = {}
    cur = conn.execute(
        """SELECT g.person_id, b.name FROM subscriptions s
           JOIN badge_grants g ON g.person_id = s.person_id
           JOIN badges b ON b.id = g.badge_id
           WHERE s.list_id = ? ORDER BY b.name""",
        (list_id,),
    )
    for person_id, badge in cur.fetchall():
        badges.setdefault(person_id, []).append(badge)
    cur = conn.execute(
        """SELECT p.id, p.address, p.name, s.role, s.mode, s.status, s.bounce_score,
                  s.disabled_reason
           FROM subscriptions s JOIN people p ON p.id = s.person_id
           WHERE s.list_id = ? ORDER BY p.address""",
        (list_id,),
    )
    rows = cur.fetchall()
    return [
        Member(
            address,
            name,
            _ROLE[role],
            _MODE[mode],
            _STATUS[status],
            tuple(badges.get(pid, ())),
            score,
            reason,
        )
        for pid, address, name, role, mode, status, score, reason in rows
    ]


# Plain dict look-ups: Enum(value) costs a microsecond a call, a second per 100,000-member listing.
_ROLE = {r.value: r for r in Role}
_MODE = {m.value: m for m in Mode}
_STATUS = {s.value: s for s in Status}


def get(conn: Conn, list_id: int, address: str) -> Member | None:
    """One member, without badges."""
    row = conn.execute(
        "SELECT p.address, p.name, s.role, s.mode, s.status, s.bounce_score, s.disabled_reason "
        "FROM subscriptions s JOIN people p ON p.id = s.person_id "
        "WHERE s.list_id = ? AND p.address = ?",
        (list_id, address),
    ).fetchone()
    if row is None:
        return None
    address, name, role, mode, status, score, reason = row
    return Member(address, name, _ROLE[role], _MODE[mode], _STATUS[status], (), score, reason)


def is_member(conn: Conn, list_id: int, address: str) -> bool:
    cur = conn.execute(
        "SELECT 1 FROM subscriptions s JOIN people p ON p.id = s.person_id "
        "WHERE s.list_id = ? AND p.address = ?",
        (list_id, address),
    )
    return cur.fetchone() is not None


_FIELDS = frozenset({"role", "mode", "status", "receive_own"})


def set_field(conn: Conn, list_id: int, address: str, name: str, value: object) -> bool:
    if name not in _FIELDS:  # the column name is interpolated: known names only
        raise ValueError(name)
    extra = ""
    if name == "status" and value == "enabled":  # re-enabled by hand: the score starts again
        extra = (
            ", bounce_score = 0, last_bounce_at = '', disabled_reason = '', warnings_sent = 0, "
            "last_warning_at = '', probe_bounced = 0"
        )
    cur = conn.execute(
        f"UPDATE subscriptions SET {name} = ?{extra} WHERE list_id = ? "
        "AND person_id = (SELECT id FROM people WHERE address = ?)",
        (value, list_id, address),
    )
    return cur.rowcount > 0


def recipients_after(
    conn: Conn, list_id: int, author: str, after: tuple[str, int], limit: int
) -> list[tuple[str, int, str]]:
    """(domain, person id, address) of the next `limit` members who get posts, in (domain,
    person id) order after `after`: regular delivery, enabled; the author only if they asked for
    it. A range scan of an index, however big the list."""
    rows = conn.execute(
        """SELECT s.domain, p.id, p.address FROM subscriptions s JOIN people p ON p.id = s.person_id
           WHERE s.list_id = ? AND (s.domain, s.person_id) > (?, ?) AND s.mode = 'regular'
             AND s.status = 'enabled' AND (s.receive_own = 1 OR p.address <> ?)
           ORDER BY s.domain, s.person_id LIMIT ?""",
        (list_id, *after, author, limit),
    ).fetchall()
    return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]


def with_role(conn: Conn, list_id: int, role: str) -> list[str]:
    rows = conn.execute(
        "SELECT p.address FROM subscriptions s JOIN people p ON p.id = s.person_id "
        "WHERE s.list_id = ? AND s.role = ? ORDER BY p.address",
        (list_id, role),
    ).fetchall()
    return [str(r[0]) for r in rows]


def role_of(conn: Conn, list_id: int, address: str) -> str | None:
    row = conn.execute(
        "SELECT s.role FROM subscriptions s JOIN people p ON p.id = s.person_id "
        "WHERE s.list_id = ? AND p.address = ?",
        (list_id, address),
    ).fetchone()
    return str(row[0]) if row else None

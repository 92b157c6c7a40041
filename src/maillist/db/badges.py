"""SQL for badges and badge grants."""

from __future__ import annotations

from maillist.db.store import Conn
from maillist.models import Badge, BadgeGrant


def ensure(conn: Conn, name: str, at: str) -> int:
    """The badge's id, creating it on first grant; the first spelling of its name is kept."""
    conn.execute(
        "INSERT INTO badges (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        (name, at),
    )
    cur = conn.execute("SELECT id FROM badges WHERE name = ?", (name,))
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


def badge_id(conn: Conn, name: str) -> int | None:
    cur = conn.execute("SELECT id FROM badges WHERE name = ?", (name,))
    row = cur.fetchone()
    return int(row[0]) if row else None


def grant(conn: Conn, person_id: int, badge: int, at: str, by: str) -> bool:
    cur = conn.execute(
        "INSERT INTO badge_grants (person_id, badge_id, granted_at, granted_by) VALUES (?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (person_id, badge, at, by),
    )
    return cur.rowcount > 0


def revoke(conn: Conn, person_id: int, badge: int) -> bool:
    cur = conn.execute(
        "DELETE FROM badge_grants WHERE person_id = ? AND badge_id = ?", (person_id, badge)
    )
    if cur.rowcount:
        # A badge nobody holds any more is forgotten, so `badges list` shows only live badges.
        conn.execute(
            "DELETE FROM badges WHERE id = ? AND NOT EXISTS "
            "(SELECT 1 FROM badge_grants WHERE badge_id = ?)",
            (badge, badge),
        )
    return cur.rowcount > 0


def grants(conn: Conn, person_id: int | None = None) -> list[BadgeGrant]:
    where, args = ("WHERE g.person_id = ?", (person_id,)) if person_id is not None else ("", ())
    cur = conn.execute(
        f"""SELECT p.address, p.name, b.name, g.granted_at, g.granted_by
            FROM badge_grants g JOIN people p ON p.id = g.person_id
            JOIN badges b ON b.id = g.badge_id {where}
            ORDER BY b.name, p.address""",
        args,
    )
    return [BadgeGrant(*row) for row in cur.fetchall()]


def for_person(conn: Conn, person_id: int) -> list[str]:
    cur = conn.execute(
        "SELECT b.name FROM badge_grants g JOIN badges b ON b.id = g.badge_id "
        "WHERE g.person_id = ? ORDER BY b.name",
        (person_id,),
    )
    return [row[0] for row in cur.fetchall()]


def summary(conn: Conn) -> list[Badge]:
    cur = conn.execute(
        "SELECT b.name, COUNT(g.person_id) FROM badges b "
        "LEFT JOIN badge_grants g ON g.badge_id = b.id GROUP BY b.id ORDER BY b.name"
    )
    return [Badge(*row) for row in cur.fetchall()]


def for_addresses(conn: Conn, addresses: list[str]) -> dict[str, list[str]]:
    """Badges keyed by lower-cased address, for listing many authors at once."""
    found: dict[str, list[str]] = {}
    unique = sorted({a.lower() for a in addresses if a})
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        marks = ",".join("?" * len(chunk))
        cur = conn.execute(
            f"SELECT lower(p.address), b.name FROM people p "
            f"JOIN badge_grants g ON g.person_id = p.id JOIN badges b ON b.id = g.badge_id "
            f"WHERE p.address IN ({marks}) ORDER BY b.name",
            chunk,
        )
        for address, badge in cur.fetchall():
            found.setdefault(address, []).append(badge)
    return found


def style_of(conn: Conn, name: str) -> tuple[str, str] | None:
    row = conn.execute("SELECT colour, icon FROM badges WHERE name = ?", (name,)).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def set_style(conn: Conn, name: str, colour: str, icon: str) -> None:
    conn.execute("UPDATE badges SET colour = ?, icon = ? WHERE name = ?", (colour, icon, name))

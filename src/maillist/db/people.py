"""SQL for the people table: one row per address, site-wide."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from maillist.db.store import Conn
from maillist.models import Person


def by_address(conn: Conn, address: str) -> Person | None:
    cur = conn.execute(
        "SELECT id, address, name, created_at FROM people WHERE address = ?", (address,)
    )
    row = cur.fetchone()
    return Person(*row) if row else None


def by_id(conn: Conn, person_id: int) -> Person | None:
    cur = conn.execute(
        "SELECT id, address, name, created_at FROM people WHERE id = ?", (person_id,)
    )
    row = cur.fetchone()
    return Person(*row) if row else None


def upsert_many(conn: Conn, people: Iterable[tuple[str, str]], at: str) -> None:
    """Create each (address, name) that is new; a non-empty name given replaces the stored one."""
    conn.executemany(
        """INSERT INTO people (address, name, created_at) VALUES (?, ?, ?)
           ON CONFLICT (address) DO UPDATE SET name = excluded.name
           WHERE excluded.name <> '' AND excluded.name <> people.name""",
        ((address, name, at) for address, name in people),
    )


def add_keeping_names(conn: Conn, people: Iterable[tuple[str, str]], at: str) -> None:
    """Create each (address, name) that is new; an existing person keeps their name, and gets the
    one given only if they had none (an import never renames someone already on the site)."""
    conn.executemany(
        """INSERT INTO people (address, name, created_at) VALUES (?, ?, ?)
           ON CONFLICT (address) DO UPDATE SET name = excluded.name
           WHERE excluded.name <> '' AND people.name = ''""",
        ((address, name, at) for address, name in people),
    )


def names_for(conn: Conn, addresses: list[str]) -> dict[str, str]:
    """Account names keyed by lower-cased address (only people with a name set)."""
    return {a: str(v) for a, v in _by_address(conn, addresses, "name", "AND name <> ''").items()}


def ids_for(conn: Conn, addresses: list[str]) -> dict[str, int]:
    """Person ids keyed by lower-cased address."""
    return {a: int(v) for a, v in _by_address(conn, addresses, "id").items()}


def _by_address(conn: Conn, addresses: list[str], column: str, where: str = "") -> dict[str, Any]:
    """One column for many addresses, 500 to a query (column and where are ours, not input)."""
    found: dict[str, Any] = {}
    unique = sorted({a.lower() for a in addresses if a})
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        marks = ",".join("?" * len(chunk))
        cur = conn.execute(
            f"SELECT lower(address), {column} FROM people WHERE address IN ({marks}) {where}",
            chunk,
        )
        found.update(dict(cur.fetchall()))
    return found


def set_picture(conn: Conn, person_id: int, data: bytes, kind: str) -> None:
    conn.execute(
        "UPDATE people SET picture = ?, picture_type = ? WHERE id = ?", (data, kind, person_id)
    )


def without_skeleton(conn: Conn, limit: int) -> list[tuple[int, str]]:
    rows = conn.execute(
        "SELECT id, address FROM people WHERE skeleton = '' LIMIT ?", (limit,)
    ).fetchall()
    return [(int(r[0]), str(r[1])) for r in rows]


def set_skeletons(conn: Conn, rows: Iterable[tuple[str, int]]) -> None:
    conn.executemany("UPDATE people SET skeleton = ? WHERE id = ?", rows)


def with_skeleton(conn: Conn, skeleton: str) -> list[tuple[int, str]]:
    rows = conn.execute(
        "SELECT id, address FROM people WHERE skeleton = ? ORDER BY id", (skeleton,)
    ).fetchall()
    return [(int(r[0]), str(r[1])) for r in rows]


def signed_out_at(conn: Conn, address: str) -> int:
    """When the person last signed out of the archive (a Unix time; 0 never)."""
    row = conn.execute("SELECT signed_out_at FROM people WHERE address = ?", (address,)).fetchone()
    return int(row[0]) if row and str(row[0]).isdigit() else 0


def sign_out(conn: Conn, address: str, at: int) -> None:
    conn.execute("UPDATE people SET signed_out_at = ? WHERE address = ?", (str(at), address))


def name_if_none(conn: Conn, address: str, name: str) -> None:
    conn.execute("UPDATE people SET name = ? WHERE address = ? AND name = ''", (name, address))


def set_name(conn: Conn, address: str, name: str) -> None:
    conn.execute("UPDATE people SET name = ? WHERE address = ?", (name, address))


def unnamed_on(conn: Conn, list_id: int) -> list[str]:
    """The addresses of the list's people who have no name yet."""
    cur = conn.execute(
        "SELECT p.address FROM people p JOIN subscriptions s ON s.person_id = p.id "
        "WHERE s.list_id = ? AND p.name = ''",
        (list_id,),
    )
    return [str(row[0]) for row in cur.fetchall()]

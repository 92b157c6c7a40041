"""SQL for sign-in links to private archives (only each token's SHA-256 is stored)."""

from __future__ import annotations

import secrets

from maillist.db.store import Conn


def add(conn: Conn, token_hash: str, address: str, at: str, expires_at: str) -> None:
    conn.execute(
        "INSERT INTO sign_ins (token_hash, address, created_at, expires_at) VALUES (?, ?, ?, ?)",
        (token_hash, address, at, expires_at),
    )


def pending(conn: Conn, token_hash: str, now: str) -> str | None:
    """The address of an unused, unexpired link."""
    row = conn.execute(
        "SELECT address FROM sign_ins WHERE token_hash = ? AND used_at = '' AND expires_at > ?",
        (token_hash, now),
    ).fetchone()
    return str(row[0]) if row else None


def use(conn: Conn, token_hash: str, now: str) -> str | None:
    """Spend a link: its address, once."""
    row = conn.execute(
        "UPDATE sign_ins SET used_at = ? WHERE token_hash = ? AND used_at = '' AND expires_at > ? "
        "RETURNING address",
        (now, token_hash, now),
    ).fetchone()
    return str(row[0]) if row else None


def forget(conn: Conn, before: str) -> None:
    conn.execute("DELETE FROM sign_ins WHERE expires_at < ?", (before,))


def lists_of(conn: Conn, address: str) -> list[int]:
    """Ids of the lists with an archive and a web address that `address` belongs to (members
    of private lists read them; moderators of any list see its held posts)."""
    rows = conn.execute(
        "SELECT l.id FROM lists l JOIN subscriptions s ON s.list_id = l.id "
        "JOIN people p ON p.id = s.person_id WHERE p.address = ? AND l.archive <> 'none' "
        "AND l.web_url <> '' ORDER BY l.archive = 'private' DESC, l.id",
        (address,),
    ).fetchall()
    return [int(r[0]) for r in rows]


def latest_message(conn: Conn, list_id: int) -> int | None:
    """The list's newest message row: what a sign-in notice names as its cause."""
    row = conn.execute(
        "SELECT id FROM messages WHERE list_id = ? ORDER BY id DESC LIMIT 1", (list_id,)
    ).fetchone()
    return int(row[0]) if row else None


def possible(conn: Conn) -> bool:
    """Whether any list has an archive and a web address (a sign-in link has a place to go)."""
    row = conn.execute(
        "SELECT 1 FROM lists WHERE archive <> 'none' AND web_url <> '' LIMIT 1"
    ).fetchone()
    return row is not None


def web_request(conn: Conn, list_id: int, domain: str, address: str, at: str) -> int:
    """A row for a sign-in asked for on the web, for a list that has no mail yet: every notice
    names the message that caused it, and here that is the request itself."""
    row = conn.execute(
        "INSERT INTO messages (list_id, kind, message_id, sender, verdict, reasons, "
        "received_at, claimed) VALUES (?, 'request', ?, ?, 'accept', ?, ?, 0) RETURNING id",
        (list_id, f"sign-in.{secrets.token_hex(12)}@{domain}", address,
         "sign-in link asked for on the web", at),
    ).fetchone()  # fmt: skip
    return int(row[0])

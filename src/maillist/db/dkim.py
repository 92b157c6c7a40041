"""SQL for dkim_keys."""

from __future__ import annotations

from maillist.db.store import Conn
from maillist.mail.signing import Keys


def put(
    conn: Conn,
    domain: str,
    selector: str,
    private_key: str,
    txt: str,
    at: str,
    ed25519: tuple[str, str, str] = ("", "", ""),
) -> None:
    """The domain's keys, replacing any older ones; `ed25519` is (selector, seed, txt)."""
    conn.execute(
        "INSERT INTO dkim_keys (domain, selector, private_key, txt, created_at, ed25519_selector, "
        "ed25519_key, ed25519_txt) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (domain) DO UPDATE "
        "SET selector = excluded.selector, private_key = excluded.private_key, txt = excluded.txt, "
        "created_at = excluded.created_at, ed25519_selector = excluded.ed25519_selector, "
        "ed25519_key = excluded.ed25519_key, ed25519_txt = excluded.ed25519_txt",
        (domain, selector, private_key, txt, at, *ed25519),
    )


def key_for(conn: Conn, domain: str) -> Keys | None:
    """The keys that sign mail of `domain`."""
    row = conn.execute(
        "SELECT selector, private_key, ed25519_selector, ed25519_key FROM dkim_keys "
        "WHERE domain = ?",
        (domain,),
    ).fetchone()
    return Keys(domain, str(row[0]), str(row[1]), str(row[2]), str(row[3])) if row else None


def records_for(conn: Conn, domain: str) -> list[tuple[str, str]]:
    """(selector, TXT record value) of each key to publish."""
    row = conn.execute(
        "SELECT selector, txt, ed25519_selector, ed25519_txt FROM dkim_keys WHERE domain = ?",
        (domain,),
    ).fetchone()
    if row is None:
        return []
    return [(str(row[0]), str(row[1]))] + ([(str(row[2]), str(row[3]))] if row[3] else [])


def domains(conn: Conn) -> set[str]:
    return {str(r[0]).lower() for r in conn.execute("SELECT domain FROM dkim_keys").fetchall()}

"""SQL for dkim_keys."""

from __future__ import annotations

from maillist.db.store import Conn


def put(conn: Conn, domain: str, selector: str, private_key: str, txt: str, at: str) -> None:
    conn.execute(
        "INSERT INTO dkim_keys (domain, selector, private_key, txt, created_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (domain) DO UPDATE SET selector = excluded.selector, "
        "private_key = excluded.private_key, txt = excluded.txt, created_at = excluded.created_at",
        (domain, selector, private_key, txt, at),
    )


def key_for(conn: Conn, domain: str) -> tuple[str, str] | None:
    """(selector, private key PEM) for signing mail of `domain`."""
    row = conn.execute(
        "SELECT selector, private_key FROM dkim_keys WHERE domain = ?", (domain,)
    ).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def record_for(conn: Conn, domain: str) -> tuple[str, str] | None:
    """(selector, TXT record value) to publish."""
    row = conn.execute("SELECT selector, txt FROM dkim_keys WHERE domain = ?", (domain,)).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def domains(conn: Conn) -> set[str]:
    return {str(r[0]).lower() for r in conn.execute("SELECT domain FROM dkim_keys").fetchall()}

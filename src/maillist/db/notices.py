"""SQL for notices: each one is a one-recipient job in the outbound queue, logged for the rate
limits (notices_sent)."""

from __future__ import annotations

from maillist.db import engine
from maillist.db.store import Conn


def queue(
    conn: Conn,
    list_id: int,
    cause_row: int,
    envelope_from: str,
    recipient: str,
    data: bytes,
    at: str,
) -> int:
    """A job already expanded (the notice is its copy) with its one batch, in the caller's
    transaction: the notice is sent exactly when the decision that made it commits."""
    job = conn.execute(
        "INSERT INTO outbound_jobs (message_id, list_id, state, envelope_from, rendered, "
        "recipients, created_at, notice) VALUES (?, ?, 'expanded', ?, ?, 1, ?, 1) RETURNING id",
        (cause_row, list_id, envelope_from, data, at),
    ).fetchone()
    conn.execute(
        "INSERT INTO outbound_batches (job_id, recipients, next_attempt_at, created_at) "
        "VALUES (?, ?, ?, ?)",
        (job[0], recipient, at, at),
    )
    return int(job[0])


def log(conn: Conn, at: str, list_id: int, address: str, client: str, kind: str) -> None:
    conn.execute(
        "INSERT INTO notices_sent (at, list_id, address, client, kind) VALUES (?, ?, ?, ?, ?)",
        (at, list_id, address.lower(), client, kind),
    )


def count_to(
    conn: Conn,
    address: str,
    since: str,
    list_id: int | None = None,
    kind: str = "",
    *,
    besides: tuple[str, ...] = (),
) -> int:
    """Notices to `address` since `since` (of one list, of one kind, or of every kind but
    `besides`)."""
    engine.exclusive(conn, f"notices-to:{address.lower()}")  # count, then log: one at a time
    sql = "SELECT COUNT(*) FROM notices_sent WHERE address = ? AND at >= ?"
    args: list[object] = [address.lower(), since]
    for other in besides:
        sql += " AND kind <> ?"
        args.append(other)
    if list_id is not None:
        sql += " AND list_id = ?"
        args.append(list_id)
    if kind:
        sql += " AND kind = ?"
        args.append(kind)
    return int(conn.execute(sql, args).fetchone()[0])


def count_for_client(conn: Conn, client: str, since: str) -> int:
    engine.exclusive(conn, f"notices-client:{client}")
    row = conn.execute(
        "SELECT COUNT(*) FROM notices_sent WHERE client = ? AND at >= ?", (client, since)
    ).fetchone()
    return int(row[0])

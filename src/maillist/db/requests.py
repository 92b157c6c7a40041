"""SQL for requests: confirmations (join, leave) and moderators' tokens, stored by hash."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maillist.db import engine
from maillist.db.store import Conn
from maillist.models import RequestAction, RequestState


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    list_id: int
    action: RequestAction
    address: str
    held_id: int | None
    state: RequestState
    created_at: str
    expires_at: str
    last_sent_at: str
    decided_by: str
    detail: str = ""  # for `mode`: the delivery mode asked for


def _row(row: Any) -> Request:
    """A row in _COLUMNS order; action and state become their enums."""
    rid, list_id, action, address, held_id, state, *rest = row
    return Request(
        rid, list_id, RequestAction(action), address, held_id, RequestState(state), *rest
    )


_COLUMNS = (
    "id, list_id, action, address, held_id, state, created_at, expires_at, last_sent_at, "
    "decided_by, detail"
)


def insert(
    conn: Conn,
    list_id: int,
    action: RequestAction,
    address: str,
    token_hash: bytes,
    at: str,
    expires_at: str,
    held_id: int | None = None,
    detail: str = "",
) -> int:
    row = conn.execute(
        "INSERT INTO requests (list_id, action, address, held_id, token_hash, created_at, "
        "expires_at, last_sent_at, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (list_id, action, address, held_id, token_hash, at, expires_at, at, detail),
    ).fetchone()
    return int(row[0])


def by_hash(conn: Conn, token_hash: bytes) -> Request | None:
    """The request this token confirms, locked until the transaction ends: a confirmation
    that reaches two processes at once is acted on once."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM requests WHERE token_hash = ?{engine.for_update(conn)}",
        (token_hash,),
    ).fetchone()
    return _row(row) if row else None


def by_id(conn: Conn, request_id: int) -> Request | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM requests WHERE id = ?", (request_id,)).fetchone()
    return _row(row) if row else None


def open_for(
    conn: Conn, list_id: int, address: str, action: RequestAction, now: str
) -> Request | None:
    """The pending, unexpired request of this kind for this address, if any; a new one for
    it is this transaction's to make until it ends."""
    engine.exclusive(conn, f"request:{list_id}:{action}:{address.lower()}")
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM requests WHERE list_id = ? AND address = ? AND action = ? "
        "AND state = 'pending' AND expires_at > ? ORDER BY id DESC LIMIT 1",
        (list_id, address, action, now),
    ).fetchone()
    return _row(row) if row else None


def set_detail(conn: Conn, request_id: int, detail: str) -> None:
    conn.execute("UPDATE requests SET detail = ? WHERE id = ?", (detail, request_id))


def replace_token(conn: Conn, request_id: int, token_hash: bytes, at: str) -> None:
    """A re-sent confirmation carries a fresh token (only hashes are stored)."""
    conn.execute(
        "UPDATE requests SET token_hash = ?, last_sent_at = ? WHERE id = ?",
        (token_hash, at, request_id),
    )


def decide(conn: Conn, request_id: int, state: RequestState, at: str, by: str) -> None:
    conn.execute(
        "UPDATE requests SET state = ?, decided_at = ?, decided_by = ? WHERE id = ?",
        (state, at, by, request_id),
    )


def close_for_held(conn: Conn, held_id: int, at: str, by: str) -> None:
    """Every moderator's token for a held post, once one of them (or the CLI) decided it."""
    conn.execute(
        "UPDATE requests SET state = 'done', decided_at = ?, decided_by = ? "
        "WHERE held_id = ? AND state = 'pending'",
        (at, by, held_id),
    )


def awaiting(conn: Conn, list_id: int) -> list[Request]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM requests WHERE list_id = ? AND state = 'awaiting' ORDER BY id",
        (list_id,),
    ).fetchall()
    return [_row(r) for r in rows]


def cause_row(conn: Conn, request_id: int) -> int | None:
    """The message that asked (the newest -join or -request mail from that address), for the
    welcome notice's queue row."""
    row = conn.execute(
        "SELECT m.id FROM requests r JOIN messages m ON m.list_id = r.list_id "
        "AND m.sender = r.address AND m.kind IN ('join', 'request', 'confirm') "
        "WHERE r.id = ? ORDER BY m.id DESC LIMIT 1",
        (request_id,),
    ).fetchone()
    return int(row[0]) if row else None

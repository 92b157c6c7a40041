"""Subscription requests waiting for a moderator (lists with `subscription approve`): list them,
approve or deny one. The address already confirmed it wants to join."""

from __future__ import annotations

from dataclasses import dataclass

from maillist import clock
from maillist.db import Conn, Store
from maillist.db import audit as db_audit
from maillist.db import lists as db_lists
from maillist.db import requests as db_requests
from maillist.db import subscriptions as db_subs
from maillist.errors import UnknownHeld
from maillist.models import RequestState
from maillist.services.lists import require
from maillist.services.notify import Notifier
from maillist.services.requests import subscribe
from maillist.templating import Templates


@dataclass(frozen=True, slots=True)
class Pending:
    id: int
    address: str
    requested_at: str


async def awaiting(db: Store, list_address: str) -> list[Pending]:
    def snapshot(conn: Conn) -> list[Pending]:
        mlist = require(conn, list_address)
        return [
            Pending(r.id, r.address, r.created_at) for r in db_requests.awaiting(conn, mlist.id)
        ]

    return await db.read(snapshot)


async def decide(
    db: Store, request_id: int, approve: bool, *, actor: str, templates: Templates | None = None
) -> str:
    """Approve (subscribe, welcome) or deny a confirmed request; returns the address."""
    notifier = Notifier(templates or Templates())

    def transaction(conn: Conn) -> str:
        request = db_requests.by_id(conn, request_id)
        if request is None or request.state is not RequestState.AWAITING:
            raise UnknownHeld(f"no subscription request {request_id} is waiting")
        mlist = db_lists.by_id(conn, request.list_id)
        assert mlist is not None
        at = clock.stamp()
        state = RequestState.DONE if approve else RequestState.DENIED
        db_requests.decide(conn, request.id, state, at, actor)
        if not approve:
            db_audit.record(conn, at, actor, "requests.deny", mlist.address, request.address)
            return request.address
        if not db_subs.is_member(conn, mlist.id, request.address):
            subscribe(conn, mlist, request.address, actor, at, name=request.detail)
            cause = db_requests.cause_row(conn, request.id)
            if cause is not None:
                notifier.send(conn, mlist, cause, request.address, "welcome", capped=False)
        return request.address

    return await db.write(transaction)

"""Held posts: list them, and approve, reject or discard one."""

from __future__ import annotations

from maillist.db import Conn, Store
from maillist.db import held as db_held
from maillist.errors import UnknownHeld
from maillist.models import HeldMessage, Verdict
from maillist.services.lists import require
from maillist.services.notify import Notifier
from maillist.services.requests import decide_held
from maillist.templating import Templates

ACTIONS = {Verdict.APPROVED: "approve", Verdict.REJECTED: "reject", Verdict.DISCARDED: "discard"}


async def pending(db: Store, list_address: str) -> list[HeldMessage]:
    def snapshot(conn: Conn) -> list[HeldMessage]:
        return db_held.pending(conn, (require(conn, list_address)).id)

    return await db.read(snapshot)


async def decide(
    db: Store,
    held_id: int,
    decision: str,
    *,
    actor: str,
    reason: str = "",
    templates: Templates | None = None,
) -> HeldMessage:
    """approved: queued for redistribution exactly as a post accepted directly (same job row);
    rejected: recorded, never sent, the reason mailed to the author; discarded: recorded only.
    The same path as a moderator's reply by email (services/requests.decide_held)."""
    verdict = Verdict(decision)
    if verdict not in ACTIONS:
        raise ValueError(f"not a moderator's decision: {decision}")
    notifier = Notifier(templates or Templates())

    def transaction(conn: Conn) -> HeldMessage:
        found = db_held.get(conn, held_id)
        if found is None:
            raise UnknownHeld(f"no such held message: {held_id}")
        decide_held(conn, notifier, held_id, verdict, actor, reason)
        return found[0]

    return await db.write(transaction)

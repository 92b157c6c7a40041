"""Held posts: list them, and approve, reject or discard one."""

from __future__ import annotations

from maillist.clock import stamp
from maillist.db import Store
from maillist.db import audit as db_audit
from maillist.db import held as db_held
from maillist.db import messages as db_messages
from maillist.db import outbound as db_outbound
from maillist.errors import AlreadyDelivered, UnknownHeld
from maillist.models import HeldMessage, Verdict
from maillist.services.lists import require

ACTIONS = {Verdict.APPROVED: "approve", Verdict.REJECTED: "reject", Verdict.DISCARDED: "discard"}


async def pending(db: Store, list_address: str) -> list[HeldMessage]:
    async with db.read() as conn:
        return db_held.pending(conn, (require(conn, list_address)).id)


async def decide(
    db: Store, held_id: int, decision: str, *, actor: str, reason: str = ""
) -> HeldMessage:
    """approved: queued for redistribution exactly as a post accepted directly (same job row);
    rejected / discarded: recorded, never sent."""
    verdict = Verdict(decision)
    if verdict not in ACTIONS:
        raise ValueError(f"not a moderator's decision: {decision}")
    async with db.write() as conn:
        found = db_held.get(conn, held_id)
        if found is None:
            raise UnknownHeld(f"no such held message: {held_id}")
        held, message_row, list_id = found
        if held.decision is not None:
            raise UnknownHeld(f"held message {held_id} was already {held.decision}")
        if verdict is Verdict.APPROVED and db_messages.claim(conn, message_row) == "taken":
            raise AlreadyDelivered(
                f"held message {held_id}: a post with Message-ID <{held.message_id}> was already "
                "delivered to the list; discard this one"
            )
        at = stamp()
        db_held.decide(conn, held_id, decision, at, actor, reason)
        db_messages.set_verdict(conn, message_row, verdict)
        if verdict is Verdict.APPROVED:
            db_outbound.enqueue(conn, message_row, list_id, at)
        db_audit.record(
            conn, at, actor, f"moderation.{ACTIONS[verdict]}",
            held.list_address, f"held={held_id} <{held.message_id}> {reason}".strip(),
        )  # fmt: skip
    return held

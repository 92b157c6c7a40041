"""Unsubscribing with the member token a personalised copy carries (RFC 8058 one-click link).

The token alone authorises: it went only to that member. A bad token changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from maillist import tokens
from maillist.clock import now_iso
from maillist.db import Database, Tx
from maillist.db import audit as db_audit
from maillist.db import people as db_people
from maillist.db import site as db_site
from maillist.db import subscriptions as db_subs
from maillist.errors import BadToken, MaillistError
from maillist.models import MailingList, Person
from maillist.services.lists import require


@dataclass(frozen=True, slots=True)
class Unsubscription:
    mlist: MailingList
    address: str
    subscribed: bool  # before this request: False when the member had already left


async def _verified(tx: Tx, list_address: str, token: str) -> tuple[MailingList, Person]:
    person_id = tokens.person_of(token)
    if person_id is None:
        raise BadToken("not an unsubscribe token")
    try:
        mlist = await require(tx, list_address)
    except MaillistError:
        raise BadToken("not an unsubscribe link of a list here") from None
    person = await db_people.by_id(tx, person_id)
    secret = await db_site.secret(tx)
    if person is None or not tokens.verify(
        token, secret, tokens.UNSUBSCRIBE, mlist.address, person.address, person.id
    ):
        raise BadToken("unsubscribe token does not match")
    return mlist, person


async def check(db: Database, list_address: str, token: str) -> Unsubscription:
    """What a click would do (for the page a GET shows); changes nothing."""
    async with db.snapshot() as tx:
        mlist, person = await _verified(tx, list_address, token)
        subscribed = await db_subs.is_member(tx, mlist.id, person.address)
    return Unsubscription(mlist, person.address, subscribed)


async def unsubscribe(db: Database, list_address: str, token: str, *, actor: str) -> Unsubscription:
    async with db.transaction() as tx:
        mlist, person = await _verified(tx, list_address, token)
        subscribed = await db_subs.is_member(tx, mlist.id, person.address)
        if subscribed:
            await db_subs.delete(tx, mlist.id, person.address)
            await db_audit.record(
                tx, now_iso(), actor, "members.unsubscribe", mlist.address, person.address
            )
    return Unsubscription(mlist, person.address, subscribed)

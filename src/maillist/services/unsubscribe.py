"""Unsubscribing with the member token a personalised copy carries (RFC 8058 one-click link).

The token alone authorises: it went only to that member. A bad token changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from maillist.clock import stamp
from maillist.db import Conn, Store
from maillist.db import audit as db_audit
from maillist.db import people as db_people
from maillist.db import site as db_site
from maillist.db import subscriptions as db_subs
from maillist.errors import BadToken, MaillistError
from maillist.models import MailingList, Person
from maillist.people import tokens
from maillist.services.lists import require


@dataclass(frozen=True, slots=True)
class Unsubscription:
    mlist: MailingList
    address: str
    subscribed: bool  # before this request: False when the member had already left


def _verified(conn: Conn, list_address: str, token: str) -> tuple[MailingList, Person]:
    person_id = tokens.person_of(token)
    if person_id is None:
        raise BadToken("not an unsubscribe token")
    try:
        mlist = require(conn, list_address)
    except MaillistError:
        raise BadToken("not an unsubscribe link of a list here") from None
    person = db_people.by_id(conn, person_id)
    secret = db_site.secret(conn)
    if person is None or not tokens.verify(
        token, secret, tokens.UNSUBSCRIBE, mlist.address, person.address, person.id
    ):
        raise BadToken("unsubscribe token does not match")
    return mlist, person


async def check(db: Store, list_address: str, token: str) -> Unsubscription:
    """What a click would do (for the page a GET shows); changes nothing."""

    def snapshot(conn: Conn) -> Unsubscription:
        mlist, person = _verified(conn, list_address, token)
        subscribed = db_subs.is_member(conn, mlist.id, person.address)
        return Unsubscription(mlist, person.address, subscribed)

    return await db.read(snapshot)


async def unsubscribe(db: Store, list_address: str, token: str, *, actor: str) -> Unsubscription:
    def transaction(conn: Conn) -> Unsubscription:
        mlist, person = _verified(conn, list_address, token)
        subscribed = db_subs.is_member(conn, mlist.id, person.address)
        if subscribed:
            db_subs.delete(conn, mlist.id, person.address)
            db_audit.record(
                conn, stamp(), actor, "members.unsubscribe", mlist.address, person.address
            )
        return Unsubscription(mlist, person.address, subscribed)

    return await db.write(transaction)

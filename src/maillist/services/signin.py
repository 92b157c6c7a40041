"""Members sign in to private archives by email: a single-use link (its token's hash stored,
valid LINK_MINUTES), mailed through the queue like every notice; opening it shows a button (mail
scanners open links), the button gives a signed session cookie (tokens.session_cookie)."""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import timedelta

from maillist import clock
from maillist.db import Conn, Store
from maillist.db import lists as db_lists
from maillist.db import people as db_people
from maillist.db import signins as sql
from maillist.db import site as db_site
from maillist.errors import BadAddress, BadToken
from maillist.people import tokens
from maillist.people.addresses import normalise
from maillist.services.notify import Notifier

LINK_MINUTES = 30
SESSION_DAYS = 30


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def shown(address: str) -> str:
    """The address as the "a link is on its way" page shows it: the same work for anyone."""
    try:
        return normalise(address)
    except BadAddress:
        return address.strip()[:200]


async def request(
    db: Store, notifier: Notifier, address: str, next_path: str, client: str = ""
) -> None:
    """Mail a link if `address` belongs to a list with an archive and a web address. Run after
    the page has answered (web/archive.py), so the answer takes the same time for a member and
    a stranger: the page never says who is a member, not even by its timing. The links an
    address gets are capped on their own (notify.APART), never from the member's notices."""
    try:
        canonical = normalise(address)
    except BadAddress:
        return

    def transaction(conn: Conn) -> None:
        lists = sql.lists_of(conn, canonical)
        mlist = db_lists.by_id(conn, lists[0]) if lists else None
        if mlist is None:
            return
        token = secrets.token_urlsafe(24)
        now = clock.now()
        sql.forget(conn, clock.iso(now))
        sql.add(conn, _hash(token), canonical, clock.iso(now),
                clock.iso(now + timedelta(minutes=LINK_MINUTES)))  # fmt: skip
        link = f"{mlist.web_url}/signin/{token}" + (f"?next={next_path}" if next_path else "")
        cause = sql.latest_message(conn, mlist.id)
        if cause is None:  # a notice names the message that caused it: a list with no mail yet
            cause = sql.web_request(conn, mlist.id, mlist.domain, canonical, clock.iso(now))
        notifier.send(conn, mlist, cause, canonical, "sign-in", link=link, client=client,
                      minutes=LINK_MINUTES)  # fmt: skip

    await db.write(transaction)


async def possible(db: Store) -> bool:
    """Whether signing in can work at all here (some list has a web_url for its links)."""

    def snapshot(conn: Conn) -> bool:
        return sql.possible(conn)

    return await db.read(snapshot)


async def pending(db: Store, token: str) -> str:
    def snapshot(conn: Conn) -> str:
        found = sql.pending(conn, _hash(token), clock.stamp())
        if found is None:
            raise BadToken("this sign-in link is not valid (used, or expired)")
        return found

    return await db.read(snapshot)


async def sign_in(db: Store, token: str) -> tuple[str, str]:
    """(address, session cookie) for a link, spending it."""

    def transaction(conn: Conn) -> tuple[str, str]:
        found = sql.use(conn, _hash(token), clock.stamp())
        secret = db_site.secret(conn)
        if found is None:
            raise BadToken("this sign-in link is not valid (used, or expired)")
        expires = int(time.time()) + SESSION_DAYS * 86400
        return found, tokens.session_cookie(secret, found, expires)

    return await db.write(transaction)


async def viewer(db: Store, cookie: str) -> str:
    """The signed-in address a cookie names ('' for none, a bad one, or one issued before its
    person last signed out: signing out ends every session, a copied cookie included)."""
    if not cookie:
        return ""
    now = int(time.time())

    def snapshot(conn: Conn) -> str:
        address = tokens.session_address(db_site.secret(conn), cookie, now)
        if not address:
            return ""
        out = db_people.signed_out_at(conn, address)
        issued = tokens.session_expires(cookie) - SESSION_DAYS * 86400
        return address if issued > out else ""

    return await db.read(snapshot)


async def sign_out(db: Store, cookie: str) -> None:
    """Every session of the person this cookie names ends now."""
    address = await viewer(db, cookie)
    if address:
        await db.write(lambda conn: db_people.sign_out(conn, address, int(time.time())))

"""Members sign in to private archives by email: a single-use link (its token's hash stored,
valid LINK_MINUTES), mailed through the queue like every notice; opening it shows a button (mail
scanners open links), the button gives a signed session cookie (tokens.session_cookie)."""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import timedelta

from maillist import clock, tokens
from maillist.addresses import normalise
from maillist.db import Store
from maillist.db import lists as db_lists
from maillist.db import signins as sql
from maillist.db import site as db_site
from maillist.errors import BadAddress, BadToken
from maillist.services.notify import Notifier

LINK_MINUTES = 30
SESSION_DAYS = 30


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def request(db: Store, notifier: Notifier, address: str, next_path: str) -> str:
    """Mail a link if `address` belongs to a list with an archive and a web address; the same answer
    either way (the page never says who is a member). Returns the normalised address."""
    try:
        canonical = normalise(address)
    except BadAddress:
        return address.strip()[:200]
    async with db.write() as conn:
        lists = sql.lists_of(conn, canonical)
        mlist = db_lists.by_id(conn, lists[0]) if lists else None
        if mlist is None:
            return canonical
        token = secrets.token_urlsafe(24)
        now = clock.now()
        sql.forget(conn, clock.iso(now))
        sql.add(conn, _hash(token), canonical, clock.iso(now),
                clock.iso(now + timedelta(minutes=LINK_MINUTES)))  # fmt: skip
        link = f"{mlist.web_url}/signin/{token}" + (f"?next={next_path}" if next_path else "")
        cause = conn.execute(
            "SELECT id FROM messages WHERE list_id = ? ORDER BY id DESC LIMIT 1", (mlist.id,)
        ).fetchone()
        if cause is None:  # a notice names the message that caused it: a list with no mail yet
            return canonical
        notifier.send(conn, mlist, int(cause[0]), canonical, "sign-in", link=link,
                      minutes=LINK_MINUTES)  # fmt: skip
    return canonical


async def pending(db: Store, token: str) -> str:
    async with db.read() as conn:
        found = sql.pending(conn, _hash(token), clock.stamp())
    if found is None:
        raise BadToken("this sign-in link is not valid (used, or expired)")
    return found


async def sign_in(db: Store, token: str) -> tuple[str, str]:
    """(address, session cookie) for a link, spending it."""
    async with db.write() as conn:
        found = sql.use(conn, _hash(token), clock.stamp())
        secret = db_site.secret(conn)
    if found is None:
        raise BadToken("this sign-in link is not valid (used, or expired)")
    expires = int(time.time()) + SESSION_DAYS * 86400
    return found, tokens.session_cookie(secret, found, expires)


async def viewer(db: Store, cookie: str) -> str:
    """The signed-in address a cookie names ('' for none or a bad one)."""
    if not cookie:
        return ""
    async with db.read() as conn:
        secret = db_site.secret(conn)
    return tokens.session_address(secret, cookie, int(time.time()))

"""Site-wide badges: grant, revoke, and answer which badges a person holds."""

from __future__ import annotations

import re

from maillist.clock import stamp
from maillist.db import Conn, Store
from maillist.db import audit as db_audit
from maillist.db import badges as db_badges
from maillist.db import people as db_people
from maillist.errors import BadgeError, UnknownPerson
from maillist.models import Badge, BadgeGrant, Person
from maillist.people.addresses import has_control, normalise
from maillist.services import lookalikes

MAX_BADGE = 64


def badge_name(name: str) -> str:
    """Badges end up in mail headers and pages: one printable line, bounded."""
    text = " ".join(name.split())
    if not text:
        raise BadgeError("a badge name must not be empty")
    if len(text) > MAX_BADGE or has_control(name):
        raise BadgeError(f"a badge name must be one line of at most {MAX_BADGE} characters")
    if "," in text:  # X-Maillist-Badges lists badges separated by commas
        raise BadgeError("a badge name may not contain a comma")
    return text


def _person(conn: Conn, address: str) -> Person:
    canonical = normalise(address)
    person = db_people.by_address(conn, canonical)
    if person is None:
        raise UnknownPerson(f"no such person: {canonical} (add them to a list first)")
    return person


async def grant(
    db: Store, address: str, badge: str, *, actor: str, allow_confusable: bool = False
) -> BadgeGrant:
    name = badge_name(badge)

    def transaction(conn: Conn) -> BadgeGrant:
        person = _person(conn, address)
        if not allow_confusable:  # a badge is a claim of trust: not for a look-alike address
            lookalikes.check(conn, [person.address])
        at = stamp()
        badge_id = db_badges.ensure(conn, name, at)
        if not db_badges.grant(conn, person.id, badge_id, at, actor):
            raise BadgeError(f"{person.address} already has the badge {name!r}")
        db_audit.record(conn, at, actor, "badges.grant", person.address, name)
        return BadgeGrant(person.address, person.name, name, at, actor)

    return await db.write(transaction)


async def revoke(db: Store, address: str, badge: str, *, actor: str) -> None:
    name = badge_name(badge)

    def transaction(conn: Conn) -> None:
        person = _person(conn, address)
        badge_id = db_badges.badge_id(conn, name)
        if badge_id is None or not db_badges.revoke(conn, person.id, badge_id):
            raise BadgeError(f"{person.address} does not have the badge {name!r}")
        db_audit.record(conn, stamp(), actor, "badges.revoke", person.address, name)

    await db.write(transaction)


async def grants(db: Store, address: str | None = None) -> list[BadgeGrant]:
    def snapshot(conn: Conn) -> list[BadgeGrant]:
        if address is None:
            return db_badges.grants(conn)
        return db_badges.grants(conn, (_person(conn, address)).id)

    return await db.read(snapshot)


async def summary(db: Store) -> list[Badge]:
    def snapshot(conn: Conn) -> list[Badge]:
        return db_badges.summary(conn)

    return await db.read(snapshot)


_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_ICON = 4


async def style(
    db: Store, badge: str, *, colour: str | None, icon: str | None, actor: str
) -> tuple[str, str]:
    """How a badge looks beside names in the archive: a colour (#rrggbb, written into a
    stylesheet, so nothing else is accepted) and a short icon (an emoji or a few letters)."""
    name = badge_name(badge)
    if colour is not None and colour and not _COLOUR.match(colour.strip()):
        raise BadgeError(f"a colour is #rrggbb (six hex digits), not {colour!r}")
    if icon is not None and (len(icon.strip()) > MAX_ICON or has_control(icon)):
        raise BadgeError(f"an icon is at most {MAX_ICON} printable characters")

    def transaction(conn: Conn) -> tuple[str, str]:
        current = db_badges.style_of(conn, name)
        if current is None:
            raise BadgeError(f"no such badge: {name!r} (grant it to someone first)")
        new = (
            current[0] if colour is None else colour.strip().lower(),
            current[1] if icon is None else icon.strip(),
        )
        db_badges.set_style(conn, name, *new)
        db_audit.record(
            conn, stamp(), actor, "badges.style", name, f"colour={new[0]} icon={new[1]}"
        )
        return new

    return await db.write(transaction)

"""Site-wide badges: grant, revoke, and answer which badges a person holds."""

from __future__ import annotations

from maillist.addresses import has_control, normalise
from maillist.clock import now_iso
from maillist.db import Database, Tx
from maillist.db import audit as db_audit
from maillist.db import badges as db_badges
from maillist.db import people as db_people
from maillist.errors import BadgeError, UnknownPerson
from maillist.models import Badge, BadgeGrant, Person

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


async def _person(tx: Tx, address: str) -> Person:
    canonical = normalise(address)
    person = await db_people.by_address(tx, canonical)
    if person is None:
        raise UnknownPerson(f"no such person: {canonical} (add them to a list first)")
    return person


async def grant(db: Database, address: str, badge: str, *, actor: str) -> BadgeGrant:
    name = badge_name(badge)
    async with db.transaction() as tx:
        person = await _person(tx, address)
        at = now_iso()
        badge_id = await db_badges.ensure(tx, name, at)
        if not await db_badges.grant(tx, person.id, badge_id, at, actor):
            raise BadgeError(f"{person.address} already has the badge {name!r}")
        await db_audit.record(tx, at, actor, "badges.grant", person.address, name)
    return BadgeGrant(person.address, person.name, name, at, actor)


async def revoke(db: Database, address: str, badge: str, *, actor: str) -> None:
    name = badge_name(badge)
    async with db.transaction() as tx:
        person = await _person(tx, address)
        badge_id = await db_badges.badge_id(tx, name)
        if badge_id is None or not await db_badges.revoke(tx, person.id, badge_id):
            raise BadgeError(f"{person.address} does not have the badge {name!r}")
        await db_audit.record(tx, now_iso(), actor, "badges.revoke", person.address, name)


async def grants(db: Database, address: str | None = None) -> list[BadgeGrant]:
    async with db.snapshot() as tx:
        if address is None:
            return await db_badges.grants(tx)
        return await db_badges.grants(tx, (await _person(tx, address)).id)


async def badges_for(db: Database, address: str) -> list[str]:
    """The badges shown beside this address's posts; empty for an unknown address."""
    async with db.snapshot() as tx:
        person = await db_people.by_address(tx, normalise(address))
        return [] if person is None else await db_badges.for_person(tx, person.id)


async def summary(db: Database) -> list[Badge]:
    async with db.snapshot() as tx:
        return await db_badges.summary(tx)

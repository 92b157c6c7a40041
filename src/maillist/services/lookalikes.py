"""Refusing addresses that impersonate members: a new member, or a person given a badge, whose
address mixes scripts, or looks like an existing person's address (one TR 39 skeleton, and one
of the two is not plain ASCII: `anne` with a Cyrillic U+0430 beside
`anne`). `--allow-confusable`
lets an admin who has checked go ahead."""

from __future__ import annotations

from collections.abc import Sequence

from maillist import lookalikes
from maillist.db import people as db_people
from maillist.db.store import Conn
from maillist.errors import Confusable

STEP = 5000


def fill(conn: Conn) -> None:
    """Skeletons for the people that have none yet (added since the last check)."""
    while rows := db_people.without_skeleton(conn, STEP):
        db_people.set_skeletons(conn, [(lookalikes.skeleton(a), i) for i, a in rows])


def check(conn: Conn, addresses: Sequence[str]) -> None:
    """Raise Confusable for the first address that mixes scripts or resembles another
    person's (one who was there first, when the address is already a person's)."""
    fill(conn)
    for address in addresses:
        known = db_people.by_address(conn, address)
        before = known.id if known is not None else None  # the address resembles older ones
        twins = [
            other
            for person_id, other in db_people.with_skeleton(conn, lookalikes.skeleton(address))
            if (before is None or person_id < before)
            and other.lower() != address.lower()
            and not (other.isascii() and address.isascii())
        ]
        if twins:
            raise Confusable(
                f"{address} looks like the existing address {twins[0]}; if they are two people, "
                "add it with --allow-confusable"
            )
        mixed = lookalikes.mixed_script(address)
        if mixed:
            raise Confusable(
                f"{address} mixes scripts ({mixed}); if that is really its address, add it "
                "with --allow-confusable"
            )

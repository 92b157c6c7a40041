"""Refusing addresses that impersonate members: a new member, or a person given a badge, whose
address mixes scripts, or looks like an existing person's address (one TR 39 skeleton, and one
of the two is not plain ASCII: `anne` with a Cyrillic U+0430 beside
`anne`). `--allow-confusable`
lets an admin who has checked go ahead."""

from __future__ import annotations

from collections.abc import Sequence

from maillist.db import people as db_people
from maillist.db.store import Conn
from maillist.errors import Confusable
from maillist.people import lookalikes

STEP = 5000


def fill(conn: Conn) -> None:
    """Skeletons for the people that have none yet (added since the last check)."""
    while rows := db_people.without_skeleton(conn, STEP):
        db_people.set_skeletons(conn, [(lookalikes.skeleton(a), i) for i, a in rows])


def why(conn: Conn, address: str) -> str:
    """'' if `address` may be added, else why not: it resembles an older person's address (one
    TR 39 skeleton, one side not plain ASCII), or it mixes scripts."""
    fill(conn)
    known = db_people.by_address(conn, address)
    before = known.id if known is not None else None  # the address resembles older ones
    for person_id, other in db_people.with_skeleton(conn, lookalikes.skeleton(address)):
        if before is not None and person_id >= before:
            continue
        if other.lower() != address.lower() and not (other.isascii() and address.isascii()):
            return f"{address} looks like the existing address {other}"
    mixed = lookalikes.mixed_script(address)
    return f"{address} mixes scripts ({mixed})" if mixed else ""


def check(conn: Conn, addresses: Sequence[str]) -> None:
    """Raise Confusable for the first address that mixes scripts or resembles another
    person's (one who was there first, when the address is already a person's)."""
    for address in addresses:
        reason = why(conn, address)
        if reason:
            raise Confusable(f"{reason}; if that is right, add it with --allow-confusable")

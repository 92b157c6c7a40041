"""DKIM keys for list domains: make one, show its DNS record, find list domains without one."""

from __future__ import annotations

from maillist import clock, signing
from maillist.db import Store
from maillist.db import audit as db_audit
from maillist.db import dkim as db_dkim
from maillist.db import lists as db_lists
from maillist.errors import BadInput

_SELECTOR_OK = set("abcdefghijklmnopqrstuvwxyz0123456789-")


async def keygen(db: Store, domain: str, selector: str, *, actor: str) -> str:
    """A new RSA-2048 key for `domain` (replacing any older one); returns the zone-file line."""
    domain, selector = domain.strip().lower().rstrip("."), selector.strip().lower()
    if not domain or "." not in domain or not set(domain) <= _SELECTOR_OK | {"."}:
        raise BadInput(f"not a domain name: {domain!r}")
    if not selector or not set(selector) <= _SELECTOR_OK:
        raise BadInput(f"a selector is letters, digits and '-': {selector!r}")
    private, txt = signing.new_key()
    async with db.write() as conn:
        at = clock.stamp()
        db_dkim.put(conn, domain, selector, private, txt, at)
        db_audit.record(conn, at, actor, "dkim.keygen", domain, f"selector={selector}")
    return signing.txt_zone_line(selector, domain, txt)


async def show(db: Store, domain: str) -> str:
    async with db.read() as conn:
        found = db_dkim.record_for(conn, domain.strip().lower().rstrip("."))
    if found is None:
        raise BadInput(f"no DKIM key for {domain}: make one with `maillist dkim keygen {domain}`")
    return signing.txt_zone_line(found[0], domain.strip().lower().rstrip("."), found[1])


async def unsigned_domains(db: Store) -> list[str]:
    """List domains whose copies go out unsigned."""
    async with db.read() as conn:
        have = db_dkim.domains(conn)
        return sorted({s.list.domain.lower() for s in db_lists.all_lists(conn)} - have)

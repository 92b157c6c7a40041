"""DKIM keys for list domains: make one, show its DNS record, find list domains without one."""

from __future__ import annotations

from maillist import clock
from maillist.db import Conn, Store
from maillist.db import audit as db_audit
from maillist.db import dkim as db_dkim
from maillist.db import lists as db_lists
from maillist.errors import BadInput
from maillist.mail import signing

_SELECTOR_OK = set("abcdefghijklmnopqrstuvwxyz0123456789-")


async def keygen(
    db: Store, domain: str, selector: str, *, actor: str, ed25519: bool = False
) -> list[str]:
    """A new RSA-2048 key for `domain` (replacing any older ones), and with `ed25519` an Ed25519
    key too (selector SELECTOR-ed); returns the zone-file lines."""
    domain, selector = domain.strip().lower().rstrip("."), selector.strip().lower()
    if not domain or "." not in domain or not set(domain) <= _SELECTOR_OK | {"."}:
        raise BadInput(f"not a domain name: {domain!r}")
    if not selector or not set(selector) <= _SELECTOR_OK:
        raise BadInput(f"a selector is letters, digits and '-': {selector!r}")
    private, txt = signing.new_key()
    second = ("", "", "")
    if ed25519:
        seed, ed_txt = signing.new_ed25519_key()
        second = (f"{selector}-ed", seed, ed_txt)

    def transaction(conn: Conn) -> list[str]:
        at = clock.stamp()
        db_dkim.put(conn, domain, selector, private, txt, at, second)
        detail = f"selector={selector}" + (f" ed25519={second[0]}" if ed25519 else "")
        db_audit.record(conn, at, actor, "dkim.keygen", domain, detail)
        lines = [signing.txt_zone_line(selector, domain, txt)]
        if ed25519:
            lines.append(signing.txt_zone_line(second[0], domain, second[2]))
        return lines

    return await db.write(transaction)


async def show(db: Store, domain: str) -> list[str]:
    name = domain.strip().lower().rstrip(".")

    def snapshot(conn: Conn) -> list[str]:
        found = db_dkim.records_for(conn, name)
        if not found:
            raise BadInput(
                f"no DKIM key for {domain}: make one with `maillist dkim keygen {domain}`"
            )
        return [signing.txt_zone_line(selector, name, txt) for selector, txt in found]

    return await db.read(snapshot)


async def unsigned_domains(db: Store) -> list[str]:
    """List domains whose copies go out unsigned."""

    def snapshot(conn: Conn) -> list[str]:
        have = db_dkim.domains(conn)
        return sorted({s.list.domain.lower() for s in db_lists.all_lists(conn)} - have)

    return await db.read(snapshot)

"""The Postfix maps that route list mail to maillist over LMTP. Pure: lists in, map text out.

Postfix looks up `list-bounces+tag@domain` as `list-bounces@domain` when `recipient_delimiter = +`,
so one entry per list and sub-address covers every tag."""

from __future__ import annotations

from collections.abc import Iterable

from maillist.models import MailingList
from maillist.people.addresses import SUFFIXES


def addresses(mlist: MailingList) -> list[str]:
    local, domain = mlist.local_part, mlist.domain
    return [mlist.address] + [f"{local}-{suffix}@{domain}" for suffix in SUFFIXES]


def transport_map(lists: Iterable[MailingList], host: str, port: int) -> str:
    """`transport_maps`: each list address and sub-address -> lmtp:inet:HOST:PORT."""
    lines = ["# Written by `maillist postfix-maps`; do not edit: it is regenerated."]
    target = f"lmtp:inet:{host}:{port}"
    for mlist in sorted(lists, key=lambda m: m.address):
        lines += [f"{address} {target}" for address in addresses(mlist)]
    return "\n".join(lines) + "\n"


def recipient_map(lists: Iterable[MailingList]) -> str:
    """`relay_recipient_maps`: the only addresses Postfix accepts for the list domains, so mail
    to anything else is refused at SMTP time instead of bouncing later."""
    lines = ["# Written by `maillist postfix-maps`; do not edit: it is regenerated."]
    for mlist in sorted(lists, key=lambda m: m.address):
        lines += [f"{address} OK" for address in addresses(mlist)]
    return "\n".join(lines) + "\n"


def domains(lists: Iterable[MailingList]) -> str:
    """`relay_domains`: the domains maillist serves."""
    names = sorted({m.domain for m in lists})
    return "# Written by `maillist postfix-maps`.\n" + "".join(f"{d} OK\n" for d in names)

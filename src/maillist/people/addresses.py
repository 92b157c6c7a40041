"""Address validation and normalisation (email-validator), and the list sub-address rules. Pure."""

from __future__ import annotations

import re
from functools import lru_cache

from maillist.errors import BadAddress
from maillist.models import Kind

# Sub-addresses a list answers to (LIST-request@, LIST-bounces+tag@, ...). A list's own local part may
# not end with one of these, or its sub-addresses would be ambiguous with another list.
SUFFIXES = tuple(kind.value for kind in Kind if kind is not Kind.POST)
MAX_ADDRESS = 254
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_control(text: str) -> bool:
    """True if `text` holds a C0 control character or DEL (CR, LF and NUL among them)."""
    return _CONTROL.search(text) is not None


@lru_cache(maxsize=65_536)
def normalise(address: str) -> str:
    """Return the address in canonical form (domain lower-cased), or raise BadAddress.

    No DNS look-ups: an admin adding members should not wait on (or be refused by) a resolver.
    Cached: the server sees the same senders and recipients over and over (errors are not cached).
    """
    text = address.strip()
    if not text:
        raise BadAddress("invalid address '': empty")
    if len(text) > MAX_ADDRESS or has_control(text):
        raise BadAddress(f"invalid address {text[:80]!r}: too long or contains control characters")
    # Imported here: its tables cost 40 ms that `maillist --help` need not pay (and once loaded,
    # the import is a dictionary look-up; the result is cached besides).
    from email_validator import EmailNotValidError, validate_email

    try:
        info = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise BadAddress(f"invalid address {text!r}: {exc}") from None
    return f"{info.local_part}@{info.domain.lower()}"


def normalise_list_address(address: str) -> str:
    """A list address: a valid address whose local part cannot be mistaken for a sub-address."""
    canonical = normalise(address)
    local = canonical.rsplit("@", 1)[0].lower()
    if "+" in local:
        raise BadAddress(f"invalid list address {canonical!r}: '+' is reserved for sub-addresses")
    for suffix in SUFFIXES:
        if local.endswith("-" + suffix):
            raise BadAddress(
                f"invalid list address {canonical!r}: a list name may not end in '-{suffix}' "
                "(reserved for the list's own sub-addresses)"
            )
    return canonical


def normalise_each(addresses: list[str]) -> list[str | BadAddress]:
    """normalise() over a batch, returning each error in place: the unit of work for a process pool."""
    out: list[str | BadAddress] = []
    for address in addresses:
        try:
            out.append(normalise(address))
        except BadAddress as exc:
            out.append(exc)
    return out


# A +tag on a sub-address: a VERP-encoded member address (bounces), or a token (leave, confirm).
# Checked on its own, so a long member address in a VERP tag does not trip the 64-octet limit
# that email-validator applies to the local part of the list's own address.
_TAG = re.compile(r"^[\w=.-]{1,200}$")  # \w: a VERP tag names a member, who may be jürgen
TAGGED = frozenset({Kind.BOUNCES, Kind.CONFIRM, Kind.LEAVE})


@lru_cache(maxsize=4096)
def split_recipient(address: str) -> tuple[str, Kind, str]:
    """Split a recipient into (list address, kind, tag); kind is "post" for the list itself.

    `team-bounces+anne=example.org@x` -> ("team@x", "bounces", "anne=example.org"). The local part
    is matched case-insensitively; only -bounces, -leave and -confirm take a +tag (-confirm must).
    The list may not exist: the caller looks it up. Raises BadAddress for anything that cannot be
    a list or sub-address."""
    text = address.strip()
    local, at, domain = text.rpartition("@")
    base, plus, tag = local.partition("+")
    if plus and not _TAG.match(tag):
        raise BadAddress(f"not a list address: {text[:200]}")
    canonical = normalise(f"{base}@{domain}" if at else text)
    base, domain = canonical.rsplit("@", 1)
    lowered = base.lower()
    for suffix in SUFFIXES:
        if lowered.endswith("-" + suffix) and len(base) > len(suffix) + 1:
            if plus and suffix not in TAGGED:
                break
            if suffix == Kind.CONFIRM and not tag:
                break
            return f"{base[: -len(suffix) - 1]}@{domain}", Kind(suffix), tag
    else:
        if not plus:
            return canonical, Kind.POST, ""
    raise BadAddress(f"not a list address: {canonical}")

"""Subscribe, unsubscribe and list members; bulk import with a per-row report."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from maillist.clock import stamp
from maillist.db import Conn, Store
from maillist.db import audit as db_audit
from maillist.db import people as db_people
from maillist.db import subscriptions as db_subs
from maillist.errors import AlreadyMember, BadAddress, BadInput, MaillistError, UnknownMember
from maillist.models import (
    ImportReport,
    ImportRow,
    Member,
    Mode,
    NewMember,
    Role,
    RowProblem,
    Status,
)
from maillist.people.addresses import has_control, normalise
from maillist.services import lookalikes
from maillist.services.lists import require
from maillist.services.validation import normalise_all

Progress = Callable[[int], None]
"""Called with the number of rows just processed, so the CLI can advance a progress bar."""

_BATCH = 5000


async def add(
    db: Store,
    list_address: str,
    addresses: Sequence[str],
    *,
    name: str = "",
    role: Role = Role.MEMBER,
    mode: Mode = Mode.REGULAR,
    actor: str,
    allow_confusable: bool = False,
) -> list[str]:
    """Subscribe every address or none: one bad, existing or look-alike address (see
    services/lookalikes.py) changes nothing."""
    canonical = _unique([normalise(a) for a in addresses])
    if name and has_control(name):
        raise BadInput("a name must be one line without control characters")

    def transaction(conn: Conn) -> list[str]:
        mlist = require(conn, list_address)
        present = db_subs.addresses_on(conn, mlist.id)
        already = [a for a in canonical if a.lower() in present]
        if already:
            raise AlreadyMember(f"already a member of {mlist.address}: {', '.join(already)}")
        if not allow_confusable:
            lookalikes.check(conn, canonical)
        at = stamp()
        db_people.upsert_many(conn, ((a, name.strip()) for a in canonical), at)
        db_subs.insert_many(conn, mlist.id, (NewMember(a, name, role, mode) for a in canonical), at)
        for address in canonical:
            db_audit.record(
                conn, at, actor, "members.add", mlist.address, f"{address} role={role} mode={mode}"
            )
        return canonical

    return await db.write(transaction)


async def remove(
    db: Store, list_address: str, addresses: Sequence[str], *, actor: str
) -> list[str]:
    canonical = _unique([normalise(a) for a in addresses])

    def transaction(conn: Conn) -> list[str]:
        mlist = require(conn, list_address)
        present = db_subs.addresses_on(conn, mlist.id)
        missing = [a for a in canonical if a.lower() not in present]
        if missing:
            raise UnknownMember(f"not a member of {mlist.address}: {', '.join(missing)}")
        at = stamp()
        for address in canonical:
            db_subs.delete(conn, mlist.id, address)
            db_audit.record(conn, at, actor, "members.remove", mlist.address, address)
        return canonical

    return await db.write(transaction)


async def members(db: Store, list_address: str) -> list[Member]:
    def snapshot(conn: Conn) -> list[Member]:
        return db_subs.members(conn, (require(conn, list_address)).id)

    return await db.read(snapshot)


def check_rows(
    rows: Sequence[ImportRow], addresses: Sequence[str | BadAddress]
) -> tuple[list[NewMember], list[RowProblem]]:
    """Check each row on its own (its normalised address, role, mode, repeats within the file)."""
    good: list[NewMember] = []
    problems: list[RowProblem] = []
    first_line: dict[str, int] = {}
    for row, address in zip(rows, addresses, strict=True):
        try:
            if isinstance(address, BadAddress):
                raise address
            member = _member_from(row, address)
        except MaillistError as exc:
            problems.append(RowProblem(row.line, str(exc)))
            continue
        key = member.address.lower()
        if key in first_line:
            problems.append(
                RowProblem(row.line, f"{member.address} repeats line {first_line[key]}")
            )
        else:
            first_line[key] = row.line
            good.append(member)
    return good, problems


async def import_rows(
    db: Store,
    list_address: str,
    rows: Sequence[ImportRow],
    *,
    strict: bool = False,
    actor: str,
    progress: Progress | None = None,
) -> ImportReport:
    """Add the valid new rows in one transaction; with `strict`, add nothing if any row is bad."""
    await db.read(lambda conn: require(conn, list_address))  # an unknown list fails first
    addresses = await normalise_all([row.address for row in rows], progress)
    good, problems = check_rows(rows, addresses)
    if strict and problems:
        return ImportReport(added=0, already=0, invalid=tuple(problems), applied=False)

    def transaction(conn: Conn) -> ImportReport:
        mlist = require(conn, list_address)
        present = db_subs.addresses_on(conn, mlist.id)
        new = [m for m in good if m.address.lower() not in present]
        at = stamp()
        for start in range(0, len(new), _BATCH):
            chunk = new[start : start + _BATCH]
            db_people.upsert_many(conn, ((m.address, m.name) for m in chunk), at)
            db_subs.insert_many(conn, mlist.id, chunk, at)
            if progress is not None:
                progress(len(chunk))
        db_audit.record(
            conn,
            at,
            actor,
            "members.import",
            mlist.address,
            f"added={len(new)} already={len(good) - len(new)} invalid={len(problems)}",
        )
        return ImportReport(added=len(new), already=len(good) - len(new), invalid=tuple(problems))

    return await db.write(transaction)


def _member_from(row: ImportRow, address: str) -> NewMember:
    name = row.name.strip()
    if has_control(name):
        raise BadInput(f"name for {address} contains control characters")
    try:
        role = Role(row.role.strip().lower() or "member")
    except ValueError:
        raise BadInput(f"unknown role {row.role!r} (member, moderator, owner)") from None
    try:
        mode = Mode(row.mode.strip().lower() or "regular")
    except ValueError:
        raise BadInput(f"unknown mode {row.mode!r} (regular, digest, nomail)") from None
    return NewMember(address, name, role, mode)


def _unique(addresses: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for address in addresses:
        if address.lower() not in seen:
            seen.add(address.lower())
            out.append(address)
    return out


def _name(value: str) -> str:
    text = " ".join(value.split())
    if not text or len(text) > 100 or has_control(text):
        raise ValueError(value)
    return text


_MEMBER_OPTIONS: dict[str, tuple[Callable[[str], object], str]] = {
    "name": (_name, "a display name of 1-100 characters (the person's, on every list)"),
    "role": (lambda v: Role(v.strip().lower()).value, "one of member, moderator, owner"),
    "mode": (lambda v: Mode(v.strip().lower()).value, "one of regular, digest, nomail"),
    "status": (lambda v: Status(v.strip().lower()).value, "one of enabled, disabled"),
    "receive_own": (
        lambda v: {"yes": 1, "true": 1, "on": 1, "no": 0, "false": 0, "off": 0}[v.strip().lower()],
        "yes or no",
    ),
}


async def set_option(
    db: Store, list_address: str, address: str, option: str, value: str, *, actor: str
) -> None:
    """Change one member's name, role, delivery mode, status or receive_own (own posts)."""
    key = option.strip().lower().replace("-", "_")
    found = _MEMBER_OPTIONS.get(key)
    if found is None:
        raise BadInput(
            f"unknown member option {option!r}; options are: {', '.join(_MEMBER_OPTIONS)}"
        )
    parse, valid = found
    try:
        typed = parse(value)
    except (ValueError, KeyError):
        raise BadInput(f"bad value {value!r} for {key}: {valid}") from None
    canonical = normalise(address)

    def transaction(conn: Conn) -> None:
        mlist = require(conn, list_address)
        if key == "name":
            if not db_subs.is_member(conn, mlist.id, canonical):
                raise UnknownMember(f"not a member of {mlist.address}: {canonical}")
            db_people.set_name(conn, canonical, str(typed))
        elif not db_subs.set_field(conn, mlist.id, canonical, key, typed):
            raise UnknownMember(f"not a member of {mlist.address}: {canonical}")
        db_audit.record(
            conn, stamp(), actor, "members.set", mlist.address, f"{canonical} {key}={value}"
        )

    await db.write(transaction)

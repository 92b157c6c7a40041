"""Create, inspect, configure and delete lists."""

from __future__ import annotations

from maillist.addresses import normalise_list_address
from maillist.clock import now_iso
from maillist.db import Database, Tx
from maillist.db import audit as db_audit
from maillist.db import lists as db_lists
from maillist.errors import BadOption, DuplicateList, UnknownList
from maillist.listoptions import parse_option
from maillist.models import ListSummary, MailingList, Posting


async def require(tx: Tx, address: str) -> MailingList:
    """The list at `address` (any case), or UnknownList naming what was asked for."""
    canonical = normalise_list_address(address)
    mlist = await db_lists.by_address(tx, canonical)
    if mlist is None:
        raise UnknownList(f"no such list: {canonical}")
    return mlist


async def create(
    db: Database,
    address: str,
    *,
    name: str | None = None,
    description: str = "",
    posting: Posting = Posting.MEMBERS,
    actor: str,
) -> MailingList:
    canonical = normalise_list_address(address)
    local = canonical.rsplit("@", 1)[0]
    _, display = parse_option("name", name if name is not None else local)
    _, description = parse_option("description", description)
    async with db.transaction() as tx:
        if await db_lists.by_address(tx, canonical) is not None:
            raise DuplicateList(f"list already exists: {canonical}")
        at = now_iso()
        mlist = await db_lists.insert(
            tx, canonical, display, description, posting, f"[{display}]", at
        )
        await db_audit.record(tx, at, actor, "lists.create", canonical, f"posting={posting.value}")
    return mlist


async def all_lists(db: Database) -> list[ListSummary]:
    async with db.snapshot() as tx:
        return await db_lists.all_lists(tx)


async def show(db: Database, address: str) -> ListSummary:
    async with db.snapshot() as tx:
        return await db_lists.summary(tx, await require(tx, address))


async def set_option(db: Database, address: str, option: str, value: str, *, actor: str) -> object:
    """Validate and store one option; returns the value as stored."""
    column, typed = parse_option(option, value)
    if column not in db_lists.SETTABLE:
        raise BadOption(f"list option {column!r} cannot be set")
    async with db.transaction() as tx:
        mlist = await require(tx, address)
        await db_lists.set_option(tx, mlist.id, column, typed)
        await db_audit.record(tx, now_iso(), actor, "lists.set", mlist.address, f"{column}={typed}")
    return typed


async def delete(db: Database, address: str, *, actor: str) -> ListSummary:
    async with db.transaction() as tx:
        mlist = await require(tx, address)
        gone = await db_lists.summary(tx, mlist)
        await db_lists.delete(tx, mlist.id)
        await db_audit.record(
            tx, now_iso(), actor, "lists.delete", mlist.address, f"members={gone.members}"
        )
    return gone

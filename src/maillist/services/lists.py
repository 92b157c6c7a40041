"""Create, inspect, configure and delete lists."""

from __future__ import annotations

from maillist.clock import stamp
from maillist.db import Conn, Store
from maillist.db import audit as db_audit
from maillist.db import lists as db_lists
from maillist.errors import BadOption, DuplicateList, UnknownList
from maillist.listoptions import parse_option
from maillist.models import ListSummary, MailingList, Posting
from maillist.people.addresses import normalise_list_address


def require(conn: Conn, address: str) -> MailingList:
    """The list at `address` (any case), or UnknownList naming what was asked for."""
    canonical = normalise_list_address(address)
    mlist = db_lists.by_address(conn, canonical)
    if mlist is None:
        raise UnknownList(f"no such list: {canonical}")
    return mlist


async def create(
    db: Store,
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

    def transaction(conn: Conn) -> MailingList:
        if db_lists.by_address(conn, canonical) is not None:
            raise DuplicateList(f"list already exists: {canonical}")
        at = stamp()
        mlist = db_lists.insert(conn, canonical, display, description, posting, f"[{display}]", at)
        db_audit.record(conn, at, actor, "lists.create", canonical, f"posting={posting.value}")
        return mlist

    return await db.write(transaction)


async def all_lists(db: Store) -> list[ListSummary]:
    def snapshot(conn: Conn) -> list[ListSummary]:
        return db_lists.all_lists(conn)

    return await db.read(snapshot)


async def show(db: Store, address: str) -> ListSummary:
    def snapshot(conn: Conn) -> ListSummary:
        return db_lists.summary(conn, require(conn, address))

    return await db.read(snapshot)


async def set_option(db: Store, address: str, option: str, value: str, *, actor: str) -> object:
    """Validate and store one option; returns the value as stored."""
    column, typed = parse_option(option, value)
    if column not in db_lists.SETTABLE:
        raise BadOption(f"list option {column!r} cannot be set")

    def transaction(conn: Conn) -> object:
        mlist = require(conn, address)
        db_lists.set_option(conn, mlist.id, column, typed)
        db_audit.record(conn, stamp(), actor, "lists.set", mlist.address, f"{column}={typed}")
        return typed

    return await db.write(transaction)


async def delete(db: Store, address: str, *, actor: str) -> ListSummary:
    def transaction(conn: Conn) -> ListSummary:
        mlist = require(conn, address)
        gone = db_lists.summary(conn, mlist)
        db_lists.delete(conn, mlist.id)
        db_audit.record(
            conn, stamp(), actor, "lists.delete", mlist.address, f"members={gone.members}"
        )
        return gone

    return await db.write(transaction)

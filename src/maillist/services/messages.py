"""Incoming mail before and after storage: recipients, parsing within caps, display of stored mail."""

from __future__ import annotations

from dataclasses import dataclass, replace

from maillist.db import Conn, Store
from maillist.db import badges as db_badges
from maillist.db import lists as db_lists
from maillist.db import messages as db_messages
from maillist.db import people as db_people
from maillist.errors import UnknownList
from maillist.models import VISIBLE, StoredMessage, ThreadSummary
from maillist.services.lists import require
from maillist.threads import Node, build_tree, clean_subject


async def show(db: Store, message_id: str) -> list[tuple[str, StoredMessage]]:
    """Every stored copy of a Message-ID (one per list and kind), with raw bytes and list address."""
    wanted = message_id.strip().removeprefix("<").removesuffix(">")

    def snapshot(conn: Conn) -> list[tuple[str, StoredMessage]]:
        found = db_messages.by_message_id(conn, wanted, with_raw=True)
        addresses = {m.list_id: db_lists.address_of(conn, m.list_id) for m in found}
        if not found:
            raise UnknownList(f"no such message: <{wanted}>")
        return [(addresses[m.list_id], m) for m in found]

    return await db.read(snapshot)


@dataclass(frozen=True, slots=True)
class ThreadView:
    thread: ThreadSummary
    roots: list[Node]
    messages: int


async def thread_views(db: Store, list_address: str, limit: int = 50) -> list[ThreadView]:
    """Threads newest activity first; held, rejected or discarded posts show as placeholders.
    Authors are shown with their account's name and badges, never the name a sender wrote."""

    def snapshot(conn: Conn) -> list[ThreadView]:
        mlist = require(conn, list_address)
        summaries = db_messages.threads(conn, mlist.id, limit)
        rows = db_messages.thread_messages(conn, [t.id for t in summaries])
        authors = [m.sender for m in rows if m.verdict in VISIBLE]
        badges = db_badges.for_addresses(conn, authors)
        names = db_people.names_for(conn, authors)
        by_thread: dict[int, list[Node]] = {}
        for m in rows:
            visible = m.verdict in VISIBLE and not m.placeholder
            node = Node(
                id=m.id,
                message_id=m.message_id,
                subject=clean_subject(m.subject, mlist.subject_prefix) if visible else "",
                date=m.date if visible else "",
                sender=m.sender if visible else "",
                sender_name=names.get(m.sender.lower(), "")
                if visible
                else "",  # the account's name
                placeholder=not visible,
                badges=tuple(badges.get(m.sender.lower(), ())) if visible else (),
                parent_id=m.parent_id,
            )
            by_thread.setdefault(m.thread_id or 0, []).append(node)
        views = []
        for summary in summaries:
            nodes = by_thread.get(summary.id, [])
            shown = replace(summary, subject=clean_subject(summary.subject, mlist.subject_prefix))
            views.append(
                ThreadView(shown, build_tree(nodes), sum(1 for n in nodes if not n.placeholder))
            )
        return views

    return await db.read(snapshot)

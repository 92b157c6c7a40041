"""Digests for members in digest mode: once a day at the list's `digest_hour` (UTC), or sooner
when the waiting posts pass `digest_size` bytes; `maillist digests send [LIST]` sends what waits
now. A digest is built (mail/digestmail.py), queued for its readers in the durable queue, numbered
and its posts taken off the waiting list in one transaction: after a crash it is either sent
once or not at all, and then made again with the same posts."""

from __future__ import annotations

from datetime import datetime

from maillist import clock
from maillist.db import Store
from maillist.db import archive as db_archive
from maillist.db import badges as db_badges
from maillist.db import deliveries as db_deliveries
from maillist.db import digests as sql
from maillist.db import lists as db_lists
from maillist.db.store import Conn
from maillist.errors import UnknownList
from maillist.mail import digestmail
from maillist.mail.render import sub_address
from maillist.models import MailingList
from maillist.services.deliveries import batches
from maillist.templating import Templates


def due(mlist: MailingList, waiting_bytes: int, last_sent: str, now: datetime) -> bool:
    if waiting_bytes >= mlist.digest_size:
        return True
    if now.hour < mlist.digest_hour:
        return False
    return not last_sent or clock.parse(last_sent).date() < now.date()


def send(
    conn: Conn, mlist: MailingList, templates: Templates, now: datetime, *, force: bool
) -> str:
    """Queue the list's digest if one is due (or `force`); returns what was done ('' if
    nothing). Runs in the caller's write transaction."""
    waiting = sql.waiting(conn, mlist.id)
    if not waiting:
        return ""
    last = sql.last(conn, mlist.id)
    if not force and not due(mlist, sum(w.size for w in waiting), last[2] if last else "", now):
        return ""
    rows = [w.row for w in waiting]
    readers = sql.readers(conn, mlist.id)
    sql.take(conn, mlist.id, rows)
    if not readers:  # nobody reads digests: the posts are not kept for a later reader
        return f"{len(rows)} post(s) for no digest reader"
    volume = now.year - int(mlist.created_at[:4]) + 1
    issue = last[1] + 1 if last is not None and last[0] == volume else 1
    items = _items(conn, rows)
    context = {
        "list": {"name": mlist.name, "address": mlist.address, "web_url": mlist.web_url},
        "volume": volume, "issue": issue, "threads": digestmail.threads(items),
        "posts": len(items), "request": sub_address(mlist, "request"),
        "leave": sub_address(mlist, "leave"),
    }  # fmt: skip
    data = digestmail.build(
        mlist, items, volume, issue,
        templates.text("message/digest-contents.txt.j2", **context),
        templates.text("message/digest-footer.txt.j2", **context), when=now,
    )  # fmt: skip
    at = clock.iso(now)
    job = sql.queue_job(
        conn, mlist.id, rows[-1], sub_address(mlist, "bounces"), data, len(readers), at
    )
    db_deliveries.add_batches(conn, job, batches(readers, mlist.batch_size), at)
    sql.record(conn, mlist.id, volume, issue, len(rows), job, at)
    return (
        f"{digestmail.subject_line(mlist, volume, issue)}: {len(rows)} post(s) to "
        f"{len(readers)} reader(s)"
    )


def _items(conn: Conn, rows: list[int]) -> list[digestmail.Item]:
    posts = db_archive.posts(conn, rows)
    senders = [p.sender for p in posts]
    people = db_archive.authors(conn, senders)
    badges = db_badges.for_addresses(conn, senders)
    raws = db_archive.raws(conn, rows)
    items = []
    for post in posts:
        account = people.get(post.sender.lower())
        name = account.name if account is not None and account.name else post.sender.split("@")[0]
        shown = tuple(badges.get(post.sender.lower(), ())) if post.verified else ()
        items.append(digestmail.Item(raws.get(post.id, b""), post.subject, post.thread_subject,
                                     name, shown, post.date))  # fmt: skip
    return items


async def send_now(db: Store, templates: Templates, list_address: str | None) -> list[str]:
    """`maillist digests send [LIST]`: every waiting digest now, whatever the hour."""

    def transaction(conn: Conn) -> list[str]:
        if list_address is not None:
            mlist = db_lists.by_address(conn, list_address)
            if mlist is None:
                raise UnknownList(f"no such list: {list_address}")
            targets = [mlist]
        else:
            targets = [s.list for s in db_lists.all_lists(conn)]
        now = clock.now()
        done = [(m.address, send(conn, m, templates, now, force=True)) for m in targets]
        return [f"{address}: {what}" for address, what in done if what]

    return await db.write(transaction)

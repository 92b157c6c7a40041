"""Apply a ListPlan read from another list server (`sources/`): the list, its settings, its
people and its history in ONE transaction, so a failure leaves nothing half-imported and a dry
run is the same work rolled back. Running it again changes nothing: members already on the list
and posts already archived (by Message-ID) are counted, not doubled, and settings already equal
are left alone. Archived posts are threaded with their own dates and never redistributed."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum

from maillist.clock import stamp
from maillist.db import Conn, Store
from maillist.db import archive as db_archive
from maillist.db import audit as db_audit
from maillist.db import bounces as db_bounces
from maillist.db import lists as db_lists
from maillist.db import people as db_people
from maillist.db import subscriptions as db_subs
from maillist.errors import BadAddress, BadOption, MaillistError, UnknownList
from maillist.listoptions import MAX_MESSAGE_SIZE_CAP, parse_option
from maillist.mail.mailparse import Limits
from maillist.models import MailingList, Mode, NewMember, Posting, Role
from maillist.people.addresses import has_control, normalise_list_address
from maillist.services import mboxio
from maillist.services.ingest import Incoming
from maillist.services.notify import Notifier
from maillist.services.requests import Requests
from maillist.services.sandbox import Sandbox
from maillist.services.validation import normalise_all
from maillist.sources.plan import Archived, ListPlan, Subscriber
from maillist.templating import Templates

Progress = Callable[[int], None]
"""Called with how much more was done: a person placed, or bytes of the archive read."""

RANK = {Role.MEMBER: 0, Role.MODERATOR: 1, Role.OWNER: 2}
HISTORY = MAX_MESSAGE_SIZE_CAP  # the largest archived message kept: the live cap is for new posts


class Cancelled(MaillistError):
    """The import was interrupted and rolled back."""


@dataclass(slots=True)
class Report:
    source: str
    list_address: str
    dry_run: bool
    created: bool = False
    settings: list[str] = field(default_factory=list)  # "option: old -> new (from where)"
    added: Counter[str] = field(default_factory=Counter)  # "owner, nomail": how many
    already: int = 0  # people already on the list: left as they are
    new_people: int = 0  # of those added, how many the site did not know yet
    named: int = 0  # people without a name who got the one their own archived posts gave
    posts: mboxio.ImportReport = field(default_factory=mboxio.ImportReport)
    held: mboxio.ImportReport = field(default_factory=mboxio.ImportReport)  # into moderation
    problems: list[str] = field(default_factory=list)
    left_behind: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Person:
    address: str
    name: str
    role: Role
    mode: Mode
    disabled: str
    receive_own: bool


class _DryRun(Exception):
    pass


async def apply(
    db: Store,
    plan: ListPlan,
    *,
    into: str | None = None,
    dry_run: bool = False,
    actor: str,
    progress: Progress | None = None,
) -> Report:
    address = normalise_list_address(into or plan.address)
    report = Report(plan.source, address, dry_run, problems=list(plan.problems),
                    left_behind=list(plan.left_behind))  # fmt: skip
    settings = _settings(plan, report)
    people = await _people(plan.people, report)
    limits = Limits()
    loop = asyncio.get_running_loop()
    requests = Requests(Notifier(Templates()))  # never used: imported posts are history
    parser = Sandbox("import", workers=1)
    stop = threading.Event()  # set when the import is cancelled (Ctrl-C): the transaction ends

    def check() -> None:
        if stop.is_set():
            raise Cancelled("the import was interrupted: nothing was written")

    def parsed(mlist: MailingList, entry: Archived) -> Incoming | None:
        """The message parsed on the loop (in the sandbox when big), while this thread waits."""
        future = asyncio.run_coroutine_threadsafe(
            mboxio.incoming(parser, mlist, entry, limits, report.posts.problems, HISTORY), loop
        )
        try:
            return future.result(timeout=limits.parse_seconds + 60)
        except TimeoutError:
            future.cancel()
            report.posts.problems.append(f"{entry.where}: skipped: not parsed in time")
            return None

    def transaction(conn: Conn) -> None:
        at = stamp()
        mlist = db_lists.by_address(conn, address)
        if mlist is None:
            if into is not None:
                raise UnknownList(f"no such list: {address} (--into fills an existing list)")
            local = address.rsplit("@", 1)[0]
            mlist = db_lists.insert(conn, address, local, "", Posting.MEMBERS, f"[{local}]", at)
            report.created = True
        report.list_address = mlist.address  # as the site spells it
        mlist = _configure(conn, mlist, settings, report)
        _place(conn, mlist, people, report, at, progress, check)
        if plan.archive is not None:
            for entry in plan.archive(HISTORY):  # history is kept whole, whatever the live cap
                check()
                report.posts.read += 1
                if progress is not None:
                    progress(entry.size)
                item = parsed(mlist, entry)
                if item is not None:
                    mboxio.keep(conn, entry.where, item, requests, report.posts)
        for post in plan.held:  # after the history: a held reply finds its thread
            check()
            entry = Archived(post.where, post.raw, len(post.raw))
            item = parsed(mlist, entry)
            if item is not None:
                item = replace(item, imported=False, held=post.reason)
                mboxio.keep(conn, entry.where, item, requests, report.held)
        check()
        report.named = _names_from_posts(conn, mlist)
        added = sum(report.added.values())
        db_audit.record(
            conn, at, actor, "lists.import", address,
            f"from={plan.source[:200]} added={added} already={report.already} "
            f"posts={report.posts.imported} settings={len(report.settings)}",
        )  # fmt: skip
        if dry_run:
            raise _DryRun

    try:
        await db.write(transaction, heavy=True)
    except _DryRun:
        pass
    except asyncio.CancelledError:
        stop.set()  # the writer thread rolls back at its next message or chunk
        raise
    finally:
        await parser.close()
    return report


def _settings(plan: ListPlan, report: Report) -> dict[str, tuple[object, str]]:
    """Each option's typed value and where it came from (a later reading wins); a value maillist
    would refuse is reported and not carried over."""
    typed: dict[str, tuple[object, str]] = {}
    for setting in plan.settings:
        try:
            column, value = parse_option(setting.option, setting.value)
        except BadOption as exc:
            report.problems.append(f"{setting.source}: not carried over: {exc}")
            continue
        typed[column] = (value, setting.source)
    return typed


async def _people(found: list[Subscriber], report: Report) -> list[_Person]:
    """One entry a person: the highest role they hold, the delivery of the subscription that
    receives posts (nomail for an owner or moderator who was not subscribed), their name."""
    checked = await normalise_all([s.address for s in found])
    merged: dict[str, list[tuple[Subscriber, str]]] = {}
    for row, address in zip(found, checked, strict=True):
        if isinstance(address, BadAddress):
            report.problems.append(f"{row.where}: {address}: skipped")
            continue
        if row.name and has_control(row.name):
            report.problems.append(f"{row.where}: the name of {address} has control characters")
            row = Subscriber(row.address, row.where, "", row.role, row.mode, row.receives,
                             row.disabled, row.receive_own)  # fmt: skip
        merged.setdefault(address.lower(), []).append((row, address))
    people = []
    for rows in merged.values():
        receiving = [row for row, _ in rows if row.receives]
        modes = {row.mode for row in receiving}
        if len(modes) > 1:
            report.left_behind.append(
                f"{' and '.join(r.where for r in receiving)}: {rows[0][1]} is subscribed "
                f"{' and '.join(sorted(modes))}; maillist keeps one delivery a member: "
                f"{receiving[0].mode.value}"
            )
        first = receiving[0] if receiving else None
        people.append(
            _Person(
                address=rows[0][1],
                name=next((r.name.strip() for r, _ in rows if r.name.strip()), "")[:100],
                role=max((r.role for r, _ in rows), key=RANK.__getitem__),
                mode=first.mode if first is not None else Mode.NOMAIL,
                disabled=next((r.disabled for r, _ in rows if r.disabled), ""),
                receive_own=first.receive_own if first is not None else True,
            )
        )
    return people


def _configure(
    conn: Conn, mlist: MailingList, settings: dict[str, tuple[object, str]], report: Report
) -> MailingList:
    for column, (value, source) in settings.items():
        if column not in db_lists.SETTABLE:
            report.problems.append(f"{source}: {column} cannot be set")
            continue
        before = getattr(mlist, column)
        if str(before) == str(value) or before == value:
            continue
        db_lists.set_option(conn, mlist.id, column, value)
        report.settings.append(f"{column}: {_shown(before)} -> {_shown(value)} (from {source})")
    fresh = db_lists.by_id(conn, mlist.id)
    assert fresh is not None
    return fresh


def _place(
    conn: Conn,
    mlist: MailingList,
    people: list[_Person],
    report: Report,
    at: str,
    progress: Progress | None,
    check: Callable[[], None],
) -> None:
    present = db_subs.addresses_on(conn, mlist.id)
    new = [p for p in people if p.address.lower() not in present]
    report.already += len(people) - len(new)
    known = db_people.ids_for(conn, [p.address for p in new])
    report.new_people += sum(1 for p in new if p.address.lower() not in known)
    for start in range(0, len(new), 5000):
        check()
        chunk = new[start : start + 5000]
        db_people.add_keeping_names(conn, ((p.address, p.name) for p in chunk), at)
        db_subs.insert_many(
            conn, mlist.id, (NewMember(p.address, p.name, p.role, p.mode) for p in chunk), at
        )
        for person in chunk:
            report.added[f"{person.role.value}, {person.mode.value}"] += 1
            if person.disabled:
                db_bounces.disable(conn, mlist.id, person.address, person.disabled)
            if not person.receive_own:
                db_subs.set_field(conn, mlist.id, person.address, "receive_own", 0)
        if progress is not None:
            progress(len(chunk) + (len(people) - len(new) if start == 0 else 0))
    if not new and progress is not None:
        progress(len(people))


def _names_from_posts(conn: Conn, mlist: MailingList) -> int:
    """A person the source kept no name for (mlmmj keeps none) takes the display name of their
    own latest post in the archive, as a join by email takes the joining message's."""
    unnamed = db_people.unnamed_on(conn, mlist.id)
    if not unnamed:
        return 0
    names = db_archive.author_names(conn, mlist.id)
    named = 0
    for address in unnamed:
        name = " ".join(names.get(address.lower(), "").split())[:100]
        if name and not has_control(name):
            db_people.name_if_none(conn, address, name)
            named += 1
    return named


def _shown(value: object) -> str:
    return repr(value.value if isinstance(value, Enum) else value)

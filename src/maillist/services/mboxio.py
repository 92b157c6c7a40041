"""A list's history in and out as mbox files.

Import reads an existing list's archive (Mailman 2 pipermail, mlmmj, Google Takeout) and threads
each message exactly as live mail (services/ingest.py, marked imported: shown in the archive,
never redistributed, duplicates skipped by Message-ID), several hundred per transaction; a
message that cannot be used is reported by its position and the rest go on. A dry run reports
the defects it would meet and writes nothing. Export writes the delivered posts as mboxrd."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from maillist.db import Conn, Store
from maillist.db import archive as db_archive
from maillist.db import ingest as db_ingest
from maillist.db import lists as db_lists
from maillist.db.store import savepoint
from maillist.errors import BadInput, MaillistError, MessageRefused, UnknownList
from maillist.listoptions import MAX_MESSAGE_SIZE_CAP
from maillist.mail import mailparse, mboxes
from maillist.mail.mailparse import Limits
from maillist.models import Kind, MailingList
from maillist.services.ingest import Incoming, ingest_one
from maillist.services.notify import Notifier
from maillist.services.requests import Requests
from maillist.services.sandbox import Sandbox
from maillist.sources.mbox import messages
from maillist.sources.plan import Archived
from maillist.templating import Templates

CHUNK = 500  # messages per transaction
INLINE_BYTES = 64 * 1024  # as SMTP: a small single-part message is parsed in-process


@dataclass(slots=True)
class ImportReport:
    read: int = 0
    imported: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)  # "message N: what is wrong"


async def import_mbox(
    db: Store,
    list_address: str,
    path: Path,
    *,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """`progress(n)`: n more bytes of the file read. Each message is capped as SMTP caps it
    (the list's size limit, the header caps, the parse budget in a sandbox for what SMTP would
    not parse on its loop); what is over a cap is reported by position and skipped."""
    mlist = await db.read(lambda conn: db_lists.by_address(conn, list_address))
    if mlist is None:
        raise UnknownList(f"no such list: {list_address}")
    limits = Limits()
    report = ImportReport()
    pending: list[tuple[str, Incoming]] = []
    requests = Requests(Notifier(Templates()))  # never used: imported posts are posts
    parser = Sandbox("import", workers=1)
    try:
        for entry in messages(path, mlist.max_message_size):
            report.read += 1
            if progress is not None:
                progress(entry.size)
            if dry_run:
                report.problems += await checked(parser, entry, limits, mlist)
                continue
            item = await incoming(parser, mlist, entry, limits, report.problems,
                                  mlist.max_message_size)  # fmt: skip
            if item is not None:
                pending.append((entry.where, item))
            if len(pending) >= CHUNK:
                await _store(db, pending, requests, report)
                pending = []
        if pending:
            await _store(db, pending, requests, report)
    finally:
        await parser.close()
    return report


def over_cap(entry: Archived, cap: int) -> str:
    what = "maillist's limit" if cap == MAX_MESSAGE_SIZE_CAP else "the list's limit"
    setting = "" if cap == MAX_MESSAGE_SIZE_CAP else " (max_message_size)"
    return f"{entry.where}: skipped: {entry.size:,} bytes, over {what} of {cap:,}{setting}"


async def checked(
    parser: Sandbox, entry: Archived, limits: Limits, mlist: MailingList
) -> list[str]:
    """What a dry run reports of one message."""
    if entry.raw is None:
        return [over_cap(entry, mlist.max_message_size)]
    try:
        return await parser.run(
            mboxes.defects, entry.where, entry.raw, limits, mlist.domain,
            seconds=limits.parse_seconds,
        )  # fmt: skip
    except TimeoutError:
        return [f"{entry.where}: cannot be imported: over the parse budget"]
    except MaillistError as exc:
        return [f"{entry.where}: cannot be imported: {exc}"]


async def incoming(
    parser: Sandbox,
    mlist: MailingList,
    entry: Archived,
    limits: Limits,
    problems: list[str],
    cap: int,
) -> Incoming | None:
    """The message parsed as SMTP would parse it, marked imported; None (and a line in
    `problems`) when it was over `cap` bytes or cannot be used."""
    raw, where, now = entry.raw, entry.where, datetime.now(UTC)
    if raw is None:
        problems.append(over_cap(entry, cap))
        return None
    try:
        if len(raw) <= INLINE_BYTES and not mailparse.is_multipart(raw):
            parsed = mailparse.prepare(raw, limits, received_at=now, domain=mlist.domain)
        else:
            parsed = await parser.run(
                mailparse.prepare, raw, limits, received_at=now, domain=mlist.domain,
                seconds=limits.parse_seconds,
            )  # fmt: skip
    except MessageRefused as exc:
        problems.append(f"{where}: skipped: {mboxes.refusal(str(exc))}")
        return None
    except (TimeoutError, MaillistError) as exc:
        why = "over the parse budget" if isinstance(exc, TimeoutError) else str(exc)
        problems.append(f"{where}: skipped: {why}")
        return None
    sender = parsed.sender or ""
    return Incoming(mlist, Kind.POST, "", mlist.address, sender, raw, parsed, imported=True)


def keep(conn: Conn, where: str, item: Incoming, requests: Requests, report: ImportReport) -> None:
    """Store one imported message inside the caller's transaction (a savepoint of its own: one
    message's failure never stops the import), counted in `report`."""
    try:
        with savepoint(conn, "one"):
            outcome = ingest_one(conn, item, requests)
    except Exception as exc:
        report.problems.append(f"{where}: not stored: {type(exc).__name__}")
        return
    if outcome.duplicate:
        report.duplicates += 1
    else:
        report.imported += 1
    if outcome.search is not None:
        db_ingest.index_posts(conn, [outcome.search])


async def _store(
    db: Store, items: list[tuple[str, Incoming]], requests: Requests, report: ImportReport
) -> None:
    def transaction(conn: Conn) -> None:
        for where, item in items:
            keep(conn, where, item, requests, report)

    await db.write(transaction, heavy=True)


async def export_mbox(db: Store, list_address: str, path: Path) -> int:
    """Every delivered post, oldest first, as mboxrd; returns how many."""

    def snapshot(conn: Conn) -> int:
        mlist = db_lists.by_address(conn, list_address)
        if mlist is None:
            raise UnknownList(f"no such list: {list_address}")
        rows = db_archive.month(conn, mlist.id, "0000", "9999")
        raws = db_archive.raws(conn, [r.id for r in rows])
        written = 0
        try:
            out = path.open("wb")
        except OSError as exc:
            raise BadInput(f"cannot write {path}: {exc.strerror}") from None
        with out:
            for row in rows:
                if row.id in raws:
                    out.write(
                        mboxes.entry(raws[row.id], row.sender or "MAILER-DAEMON", _when(row.date))
                    )
                    written += 1
        return written

    return await db.read(snapshot)


def _when(iso: str) -> str:
    try:
        moment = datetime.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return "Thu Jan  1 00:00:00 1970"
    return moment.strftime("%a %b %d %H:%M:%S %Y")

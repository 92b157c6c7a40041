"""A list's history in and out as mbox files.

Import reads an existing list's archive (Mailman 2 pipermail, mlmmj, Google Takeout) and threads
each message exactly as live mail (services/ingest.py, marked imported: shown in the archive,
never redistributed, duplicates skipped by Message-ID), several hundred per transaction; a
message that cannot be used is reported by its position and the rest go on. A dry run reports
the defects it would meet and writes nothing. Export writes the delivered posts as mboxrd."""

from __future__ import annotations

import mailbox
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import compat32
from email.utils import parsedate_to_datetime
from pathlib import Path

from maillist import mailparse, mboxes
from maillist.db import Store
from maillist.db import archive as db_archive
from maillist.db import ingest as db_ingest
from maillist.db import lists as db_lists
from maillist.errors import BadInput, MessageRefused, UnknownList
from maillist.mailparse import Limits
from maillist.models import Kind, MailingList
from maillist.services.ingest import Incoming, ingest_one
from maillist.services.notify import Notifier
from maillist.services.requests import Requests
from maillist.templating import Templates

CHUNK = 500  # messages per transaction


@dataclass(slots=True)
class ImportReport:
    read: int = 0
    imported: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)  # "message N: what is wrong"


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def messages(path: Path) -> Iterator[tuple[int, bytes]]:
    """(position from 1, the message's bytes with CRLF line endings) for each message."""
    if not path.is_file():
        raise BadInput(f"no mbox file at {path}")
    box = mailbox.mbox(path, create=False)
    try:
        for position, key in enumerate(box.iterkeys(), start=1):
            yield position, crlf(box.get_bytes(key))
    finally:
        box.close()


def count(path: Path) -> int:
    box = mailbox.mbox(path, create=False)
    try:
        return len(box)
    finally:
        box.close()


def defects(position: int, raw: bytes, limits: Limits, domain: str) -> list[str]:
    """What a dry run reports of one message."""
    found: list[str] = []
    try:
        parsed = mailparse.prepare(raw, limits, received_at=datetime.now(UTC), domain=domain)
    except MessageRefused as exc:
        text = str(exc)
        if "line 1 is not a header field" in text:
            text += " (the tail of the message before it, split at an unescaped 'From ' line?)"
        return [f"message {position}: cannot be imported: {text}"]
    if parsed.minted_id:
        found.append(f"message {position}: no Message-ID (one is made from its bytes)")
    head = message_from_bytes(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n", policy=compat32)
    date = head.get("Date")
    try:
        if date is None or parsedate_to_datetime(str(date)) is None:
            raise ValueError
    except (TypeError, ValueError, IndexError):
        found.append(f"message {position}: bad or missing Date ({str(date or '')[:60]!r})")
    body = message_from_bytes(raw, policy=compat32)
    for part in body.walk():
        if part.is_multipart():
            continue
        try:
            data = part.get_payload(decode=True)
            if part.get_content_maintype() == "text" and isinstance(data, bytes):
                data.decode(part.get_content_charset() or "us-ascii")
        except (LookupError, UnicodeDecodeError) as exc:
            found.append(f"message {position}: a part that does not decode ({type(exc).__name__})")
            break
    return found


async def import_mbox(
    db: Store,
    list_address: str,
    path: Path,
    *,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    async with db.read() as conn:
        mlist = db_lists.by_address(conn, list_address)
    if mlist is None:
        raise UnknownList(f"no such list: {list_address}")
    limits = Limits()
    report = ImportReport()
    pending: list[tuple[int, Incoming]] = []
    requests = Requests(Notifier(Templates()))  # never used: imported posts are posts
    for position, raw in messages(path):
        report.read += 1
        if progress is not None:
            progress(1)
        if dry_run:
            report.problems += defects(position, raw, limits, mlist.domain)
            continue
        item = _incoming(mlist, position, raw, limits, report)
        if item is not None:
            pending.append((position, item))
        if len(pending) >= CHUNK:
            await _store(db, pending, requests, report)
            pending = []
    if pending:
        await _store(db, pending, requests, report)
    return report


def _incoming(
    mlist: MailingList, position: int, raw: bytes, limits: Limits, report: ImportReport
) -> Incoming | None:
    try:
        parsed = mailparse.prepare(raw, limits, received_at=datetime.now(UTC), domain=mlist.domain)
    except MessageRefused as exc:
        report.problems.append(f"message {position}: skipped: {exc}")
        return None
    sender = parsed.sender or ""
    return Incoming(mlist, Kind.POST, "", mlist.address, sender, raw, parsed, imported=True)


async def _store(
    db: Store, items: list[tuple[int, Incoming]], requests: Requests, report: ImportReport
) -> None:
    async with db.write() as conn:
        for position, item in items:
            conn.execute("SAVEPOINT one")
            try:
                outcome = ingest_one(conn, item, requests)
            except Exception as exc:  # one message's failure never stops the import
                conn.execute("ROLLBACK TO one")
                report.problems.append(f"message {position}: not stored: {type(exc).__name__}")
            else:
                if outcome.duplicate:
                    report.duplicates += 1
                else:
                    report.imported += 1
                if outcome.search is not None:
                    db_ingest.index_posts(conn, [outcome.search])
            conn.execute("RELEASE one")


async def export_mbox(db: Store, list_address: str, path: Path) -> int:
    """Every delivered post, oldest first, as mboxrd; returns how many."""
    async with db.read() as conn:
        mlist = db_lists.by_address(conn, list_address)
        if mlist is None:
            raise UnknownList(f"no such list: {list_address}")
        rows = db_archive.month(conn, mlist.id, "0000", "9999")
        raws = db_archive.raws(conn, [r.id for r in rows])
    written = 0
    with path.open("wb") as out:
        for row in rows:
            if row.id in raws:
                out.write(
                    mboxes.entry(raws[row.id], row.sender or "MAILER-DAEMON", _when(row.date))
                )
                written += 1
    return written


def _when(iso: str) -> str:
    try:
        moment = datetime.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return "Thu Jan  1 00:00:00 1970"
    return moment.strftime("%a %b %d %H:%M:%S %Y")

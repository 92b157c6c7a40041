"""A list's history in and out as mbox files.

Import reads an existing list's archive (Mailman 2 pipermail, mlmmj, Google Takeout) and threads
each message exactly as live mail (services/ingest.py, marked imported: shown in the archive,
never redistributed, duplicates skipped by Message-ID), several hundred per transaction; a
message that cannot be used is reported by its position and the rest go on. A dry run reports
the defects it would meet and writes nothing. Export writes the delivered posts as mboxrd."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from maillist.db import Conn, Store
from maillist.db import archive as db_archive
from maillist.db import ingest as db_ingest
from maillist.db import lists as db_lists
from maillist.db.store import savepoint
from maillist.errors import BadInput, MaillistError, MessageRefused, UnknownList
from maillist.mail import mailparse, mboxes
from maillist.mail.mailparse import Limits
from maillist.models import Kind, MailingList
from maillist.services.ingest import Incoming, ingest_one
from maillist.services.notify import Notifier
from maillist.services.requests import Requests
from maillist.services.sandbox import Sandbox
from maillist.templating import Templates

CHUNK = 500  # messages per transaction
INLINE_BYTES = 64 * 1024  # as SMTP: a small single-part message is parsed in-process


@dataclass(slots=True)
class ImportReport:
    read: int = 0
    imported: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)  # "message N: what is wrong"


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


LINE = 64 * 1024  # read at most this much at a time: a file of one huge line costs no more


@dataclass(frozen=True, slots=True)
class Entry:
    position: int  # from 1
    raw: bytes | None  # CRLF line endings; None when it was over the cap (then skipped)
    size: int  # its size in the file, all of it


def messages(path: Path, cap: int) -> Iterator[Entry]:
    """Each message of an mbox (mboxo or mboxrd, split where a line starts with `From `, as
    Python's mailbox and mutt split), streamed: memory stays within one message of at most
    `cap` bytes, however large the file or any message in it. A file whose first line is not
    a `From ` line is no mbox (BadInput), not an empty one."""
    if not path.is_file():
        raise BadInput(f"no mbox file at {path}")
    with path.open("rb") as source:
        first = source.readline(LINE)
        if not first:
            return
        if not first.startswith(b"From "):
            raise BadInput(f"{path} is not an mbox file: its first line is not a 'From ' line")
        position, kept, size, line_start = 1, bytearray(), 0, True
        while True:
            chunk = source.readline(LINE)
            if not chunk or (line_start and chunk.startswith(b"From ")):
                if kept.endswith(b"\n\n"):  # the blank line before the separator
                    del kept[-1:]
                yield Entry(position, crlf(bytes(kept)) if size <= cap else None, size)
                if not chunk:
                    return
                position, kept, size = position + 1, bytearray(), 0
                line_start = chunk.endswith(b"\n")
                continue
            size += len(chunk)
            if size <= cap:
                kept += chunk
            elif kept:
                kept = bytearray()  # over the cap: the rest is only counted
            line_start = chunk.endswith(b"\n")


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
    pending: list[tuple[int, Incoming]] = []
    requests = Requests(Notifier(Templates()))  # never used: imported posts are posts
    parser = Sandbox("import", workers=1)
    try:
        for entry in messages(path, mlist.max_message_size):
            report.read += 1
            if progress is not None:
                progress(entry.size)
            if entry.raw is None:
                report.problems.append(
                    f"message {entry.position}: skipped: {entry.size:,} bytes, over the list's "
                    f"limit of {mlist.max_message_size:,} (max_message_size)"
                )
                continue
            if dry_run:
                report.problems += await _checked(parser, entry.position, entry.raw, limits,
                                                  mlist.domain)  # fmt: skip
                continue
            item = await _incoming(parser, mlist, entry.position, entry.raw, limits, report)
            if item is not None:
                pending.append((entry.position, item))
            if len(pending) >= CHUNK:
                await _store(db, pending, requests, report)
                pending = []
        if pending:
            await _store(db, pending, requests, report)
    finally:
        await parser.close()
    return report


async def _checked(
    parser: Sandbox, position: int, raw: bytes, limits: Limits, domain: str
) -> list[str]:
    try:
        return await parser.run(
            mboxes.defects, position, raw, limits, domain, seconds=limits.parse_seconds
        )
    except TimeoutError:
        return [f"message {position}: cannot be imported: over the parse budget"]
    except MaillistError as exc:
        return [f"message {position}: cannot be imported: {exc}"]


async def _incoming(
    parser: Sandbox,
    mlist: MailingList,
    position: int,
    raw: bytes,
    limits: Limits,
    report: ImportReport,
) -> Incoming | None:
    now = datetime.now(UTC)
    try:
        if len(raw) <= INLINE_BYTES and not mailparse.is_multipart(raw):
            parsed = mailparse.prepare(raw, limits, received_at=now, domain=mlist.domain)
        else:
            parsed = await parser.run(
                mailparse.prepare, raw, limits, received_at=now, domain=mlist.domain,
                seconds=limits.parse_seconds,
            )  # fmt: skip
    except MessageRefused as exc:
        report.problems.append(f"message {position}: skipped: {mboxes.refusal(str(exc))}")
        return None
    except (TimeoutError, MaillistError) as exc:
        why = "over the parse budget" if isinstance(exc, TimeoutError) else str(exc)
        report.problems.append(f"message {position}: skipped: {why}")
        return None
    sender = parsed.sender or ""
    return Incoming(mlist, Kind.POST, "", mlist.address, sender, raw, parsed, imported=True)


async def _store(
    db: Store, items: list[tuple[int, Incoming]], requests: Requests, report: ImportReport
) -> None:
    def transaction(conn: Conn) -> None:
        for position, item in items:
            try:
                with savepoint(conn, "one"):
                    outcome = ingest_one(conn, item, requests)
            except Exception as exc:  # one message's failure never stops the import
                report.problems.append(f"message {position}: not stored: {type(exc).__name__}")
                continue
            if outcome.duplicate:
                report.duplicates += 1
            else:
                report.imported += 1
            if outcome.search is not None:
                db_ingest.index_posts(conn, [outcome.search])

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

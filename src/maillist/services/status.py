"""`maillist status` and `maillist check`: what the installation holds, and whether it is sound."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maillist import __version__
from maillist.db import Store, migrate
from maillist.db import lists as db_lists
from maillist.db import queue as db_queue
from maillist.db import status as db_status
from maillist.db.store import Conn
from maillist.mail.render import Author
from maillist.models import MailingList, Posting
from maillist.templating import Templates


@dataclass(frozen=True, slots=True)
class Status:
    version: str
    schema: int
    database: str  # where: a file, or a PostgreSQL URL without its password
    totals: dict[str, int]
    queue: dict[str, dict[str, int]]
    jobs_waiting: int
    oldest_pending: str | None
    last_errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "schema": self.schema,
            "database": self.database,
            **self.totals,
            "queue": self.queue,
            "jobs_waiting": self.jobs_waiting,
            "oldest_pending": self.oldest_pending,
            "last_errors": self.last_errors,
        }


async def status(db: Store) -> Status:
    def snapshot(conn: Conn) -> tuple[Any, ...]:
        return (
            db_status.totals(conn), db_queue.counts(conn), db_queue.pending_jobs(conn),
            db_status.oldest_open_batch(conn), db_status.last_errors(conn),
        )  # fmt: skip

    totals, counts, waiting, oldest, errors = await db.read(snapshot)
    return Status(
        version=__version__,
        schema=await db.schema_version(),
        database=db.describe(),
        totals=totals,
        queue={state: {"batches": b, "recipients": r} for state, (b, r) in counts.items()},
        jobs_waiting=waiting,
        oldest_pending=oldest,
        last_errors=[{"state": s, "at": at, "error": e} for s, at, e in errors],
    )


async def check(db: Store, templates: Path | None = None) -> list[str]:
    """Problems found (empty when all is well): schema version, site secret, templates."""
    problems = []
    version = await db.schema_version()
    if version != migrate.latest():
        problems.append(
            f"database schema is version {version}, this maillist needs {migrate.latest()}"
        )

    def snapshot(conn: Conn) -> list[str]:
        if not db_status.secret_present(conn):
            problems.append("the site secret (for unsubscribe tokens) is missing or too short")
        try:
            sample = MailingList(
                id=0, address="check@example.org", name="Check", description="", posting=Posting.MEMBERS,
                subject_prefix="[Check]", max_message_size=1024, reply_to="author", personalize=False,
                web_url="https://example.org", created_at="",
            )  # fmt: skip
            footer = Templates(templates).footer(
                sample,
                Author("a@example.org", "A", ("Badge",)),
                "check-leave@example.org",
                "m@example.org",
            )
            if "A - Badge" not in footer:
                problems.append("the footer template does not show the author with their badges")
        except Exception as exc:  # a template an admin edited can fail in any way Jinja can
            problems.append(f"templates do not render: {type(exc).__name__}: {exc}")
        return problems

    return await db.read(snapshot)


async def warnings(db: Store) -> list[str]:
    """What is not broken but leaves someone out: a private archive with no web address has no
    way in (its sign-in links have nowhere to point)."""

    def snapshot(conn: Conn) -> list[str]:
        found = [s.list for s in db_lists.all_lists(conn)]
        return [
            f"{m.address}: its archive is private but it has no web_url, so members cannot sign in "
            f"(maillist lists set {m.address} web_url https://...)"
            for m in found
            if m.archive == "private" and not m.web_url
        ]

    return await db.read(snapshot)

"""The delivery workers' way into the store: every transaction they need, owned here, so that
delivery/worker.py never holds a connection (ARCHITECTURE.md: services own the transactions).

The work itself is services/deliveries.py's (plans, copies, results) and services/bounces.py's
and services/digests.py's (the hourly round); this module says which of it is one transaction,
how durable, and where it runs: planning and applying slices of fan-out and the hourly round are
`heavy` (in the store's threads even on SQLite), claims and slices are not durable (a crash
resets or redoes them), results are."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from maillist.config import LEASE_SECONDS
from maillist.db import dkim as db_dkim
from maillist.db.store import Conn, Store
from maillist.models import MailingList
from maillist.services import bounces, deliveries, digests
from maillist.services.deliveries import Batch, SendJob, Slice
from maillist.services.directory import ListDirectory
from maillist.services.notify import Notifier
from maillist.smtpresult import Result
from maillist.templating import Templates

log = logging.getLogger("maillist.delivery")
JOBS_CACHED = 256


@dataclass(frozen=True, slots=True)
class Outcome:
    """One sent (or failed) transaction to record."""

    batch: Batch
    list_id: int
    result: Result
    digests: tuple[bytes, ...] = ()  # personalised copies' body digests (loop detection)


class Sending:
    def __init__(
        self,
        store: Store,
        directory: ListDirectory,
        templates: Templates,
        *,
        give_up_after: float,
        lease: float = LEASE_SECONDS,
    ) -> None:
        self._store = store
        self._directory = directory
        self._templates = templates
        self._give_up_after = give_up_after
        self._lease = lease
        self._notifier = Notifier(templates)  # tells a member whose bounces disabled delivery
        self._jobs: dict[int, SendJob | None] = {}

    async def signs_personalised(self) -> bool:
        """Whether a personalised list's domain has a DKIM key (its copies will be signed)."""
        domains = {m.domain.lower() for m in self._directory.by_id().values() if m.personalize}
        return bool(domains) and bool(domains & await self._store.read(db_dkim.domains))

    async def reset(self) -> int:
        """Batches that were being sent when the process stopped: due again."""
        return await self._store.write(deliveries.reset_sending)

    async def release(self, batch_ids: Sequence[int]) -> None:
        """Claimed but not sent (a stop, a slow relay): due again at once."""
        ids = list(batch_ids)
        await self._store.write(lambda conn: deliveries.release(conn, ids))

    async def plan(self, lists: dict[int, MailingList]) -> list[Slice] | None:
        """The next slices of fan-out, read and rendered outside the write lock."""
        plan = partial(deliveries.plan_slices, lists=lists, templates=self._templates)
        return await self._store.read(plan, heavy=True)

    async def apply(self, slices: Sequence[Slice]) -> int:
        """A slice lost in a crash is redone from the job's cursor: no fsync of its own."""
        apply = partial(deliveries.apply_slices, slices=slices)
        return await self._store.write(apply, durable=False, heavy=True)

    async def review(self, lists: list[MailingList], now: datetime) -> list[str]:
        """The hourly round: bounce warnings, probes and removals, and the digests due."""
        return await self._store.write(partial(self._review, lists=lists, now=now), heavy=True)

    def _review(self, conn: Conn, lists: list[MailingList], now: datetime) -> list[str]:
        done = [line for m in lists for line in bounces.review(conn, m, self._notifier, now)]
        for mlist in lists:
            sent = digests.send(conn, mlist, self._templates, now, force=False)
            if sent:
                log.info("digest for %s: %s", mlist.address, sent)
                done.append(sent)
        return done

    async def reclaim(self) -> int:
        """Batches a process that died had claimed (several processes on one database)."""
        return await self._store.write(deliveries.reclaim_dead, durable=False)

    async def claim(self, count: int) -> tuple[list[Batch], dict[int, SendJob | None]]:
        """Due batches, and what their senders need of their jobs (kept for the next claims).
        A claim lost in a crash is reset at start-up anyway: no fsync of its own."""
        known = dict(self._jobs)  # read here: the claim may run in the store's thread
        lists = self._directory.by_id()

        def transaction(conn: Conn) -> tuple[list[Batch], dict[int, SendJob | None]]:
            claimed = deliveries.claim(conn, count, lease=self._lease)
            jobs = {
                job_id: known[job_id]
                if job_id in known
                else deliveries.load_job(conn, job_id, lists)
                for job_id in {b.job_id for b in claimed}  # each job once, however many batches
            }
            return claimed, jobs

        claimed, jobs = await self._store.write(transaction, durable=False)
        # The person ids of personalised batches' members (their unsubscribe tokens): thousands
        # for one claim, read in the reader's thread, neither on the loop nor under the write
        # lock that sessions' 250s wait for.
        if any(job is not None and job.copy.personalized for job in jobs.values()):
            await self._store.read(
                lambda conn: deliveries.member_ids(conn, jobs, claimed), heavy=True
            )
        if len(self._jobs) > JOBS_CACHED:
            self._jobs.clear()
        self._jobs.update((job_id, job) for job_id, job in jobs.items() if job is not None)
        return claimed, jobs

    async def fail(self, batch: Batch, error: str) -> None:
        """A batch that cannot be sent at all (its post is gone): failed, with the reason."""
        await self._store.write(lambda conn: deliveries.fail_batch(conn, batch, error))

    async def record(self, outcomes: Sequence[Outcome]) -> list[str]:
        """Results, several senders' in one commit (group commit); each batch's new state."""

        def transaction(conn: Conn) -> list[str]:
            states: list[str] = []
            for o in outcomes:
                if o.digests and o.result.sent:
                    deliveries.remember_copies(conn, o.list_id, o.digests)
                state = deliveries.record(
                    conn, o.batch, o.list_id, o.result, give_up_after=self._give_up_after,
                    notifier=self._notifier,
                )  # fmt: skip
                states.append(state)
            return states

        return await self._store.write(transaction)

"""Store, thread and decide each incoming message, several sessions' messages per commit.

Every message is handled inside one SQLite transaction together with the messages of other SMTP
sessions that arrived meanwhile (group commit): one fsync serves them all, and each session's 250
is sent only after that commit. Each message runs in its own savepoint, so one failure costs only
that message a 451."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from maillist import policy, threads
from maillist.clock import now_precise
from maillist.db import Database, Tx
from maillist.db import held as db_held
from maillist.db import messages as db_messages
from maillist.db import outbound as db_outbound
from maillist.db import subscriptions as db_subs
from maillist.mailparse import ParsedMessage
from maillist.models import MailingList

log = logging.getLogger("maillist.ingest")
MAX_BATCH = 64


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message for one recipient (a list or one of its sub-addresses), already parsed."""

    mlist: MailingList
    kind: str
    tag: str
    recipient: str
    envelope_from: str
    raw: bytes
    parsed: ParsedMessage


@dataclass(frozen=True, slots=True)
class Outcome:
    row_id: int
    message_id: str
    verdict: str
    reasons: tuple[str, ...]
    duplicate: bool = False


UNHANDLED = "not handled yet: mail to -{kind} is stored; its handler comes with membership by email"


async def ingest_one(tx: Tx, item: Incoming) -> Outcome:
    p = item.parsed
    existing = await db_messages.find(tx, item.mlist.id, item.kind, p.message_id)
    if existing is not None and not existing.placeholder:
        return Outcome(existing.id, p.message_id, existing.verdict, (), duplicate=True)
    at = now_precise()
    fields = {
        "envelope_from": item.envelope_from,
        "recipient": item.recipient,
        "sender": p.sender or "",
        "sender_name": p.sender_name,
        "subject": p.subject,
        "date": p.date,
        "in_reply_to": p.in_reply_to,
        "refs": " ".join(p.references),
        "raw": item.raw,
        "size": len(item.raw),
        "received_at": at,
    }
    if item.kind != "post":
        reason = UNHANDLED.format(kind=item.kind)
        row = await db_messages.insert(
            tx, item.mlist.id, item.kind, p.message_id,
            {**fields, "verdict": "unhandled", "reasons": reason},
        )  # fmt: skip
        return Outcome(row, p.message_id, "unhandled", (reason,))

    is_member = p.sender is not None and await db_subs.is_member(tx, item.mlist.id, p.sender)
    decision = policy.decide(
        policy.Facts(
            mlist=item.mlist,
            sender=p.sender,
            sender_problem=p.sender_problem,
            is_member=is_member,
            list_ids=p.list_ids,
            x_loops=p.x_loops,
            auto_submitted=p.auto_submitted,
            precedence=p.precedence,
        )
    )
    fields.update(verdict=decision.verdict, reasons="; ".join(decision.reasons))
    if existing is None:
        row = await db_messages.insert(tx, item.mlist.id, "post", p.message_id, fields)
        own_thread = None
    else:  # the placeholder that earlier replies hang from becomes this message
        row = existing.id
        await db_messages.update(tx, row, fields)
        own_thread = existing.thread_id
    await _thread(tx, item.mlist, row, own_thread, p, at)
    if decision.verdict == "hold":
        await db_held.hold(tx, row, item.mlist.id, "; ".join(decision.reasons), at)
    elif decision.verdict == "accept":
        await db_outbound.enqueue(tx, row, item.mlist.id, at)
    return Outcome(row, p.message_id, decision.verdict, decision.reasons)


async def _thread(
    tx: Tx, mlist: MailingList, row: int, own_thread: int | None, p: ParsedMessage, at: str
) -> None:
    """Link the message under its parent (making a placeholder if needed) and settle its thread."""
    candidates = [*p.references, p.in_reply_to] if p.in_reply_to else list(p.references)
    known = await db_messages.known_post_ids(tx, mlist.id, candidates)
    parent_mid = threads.pick_parent(p.references, p.in_reply_to, known.__contains__)
    parent_row: int | None = None
    parent_thread: int | None = None
    if parent_mid is not None:
        parent = await db_messages.find(tx, mlist.id, "post", parent_mid)
        if parent is None:
            thread = await db_messages.create_thread(tx, mlist.id, "", "", at)
            parent_row = await db_messages.insert_placeholder(tx, mlist.id, parent_mid, thread)
            parent_thread = thread
        else:
            parent_row, parent_thread = parent.id, parent.thread_id
    elif threads.is_reply_subject(p.subject, mlist.subject_prefix):
        # Fallback for clients that drop threading headers: "Re: <subject>" of a recent thread.
        since = (datetime.now(UTC) - timedelta(days=threads.SUBJECT_FALLBACK_DAYS)).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        )
        key = threads.subject_key(p.subject, mlist.subject_prefix)
        found = (
            await db_messages.recent_thread_by_subject(tx, mlist.id, key, since) if key else None
        )
        if found is not None and found != own_thread:
            parent_row = await db_messages.thread_root(tx, found)
            parent_thread = found if parent_row is not None else None

    if parent_row is not None and row in await db_messages.ancestors(tx, parent_row):
        parent_row, parent_thread = None, None  # headers that would make a loop: stay a root

    if parent_thread is None:
        parent_thread = own_thread or await db_messages.create_thread(tx, mlist.id, "", "", at)
    elif own_thread is not None and own_thread != parent_thread:
        await db_messages.merge_threads(tx, parent_thread, own_thread)
    await db_messages.update(tx, row, {"parent_id": parent_row, "thread_id": parent_thread})
    await db_messages.touch_thread(tx, parent_thread, at)
    if parent_row is None:
        key = threads.subject_key(p.subject, mlist.subject_prefix)
        await db_messages.name_thread(tx, parent_thread, p.subject, key)
    else:
        # A thread whose root is still missing is known by its first real message's subject.
        await _name_if_unnamed(tx, parent_thread, p.subject, mlist.subject_prefix)


async def _name_if_unnamed(tx: Tx, thread_id: int, subject: str, prefix: str) -> None:
    await db_messages.name_thread_if_unnamed(
        tx, thread_id, subject, threads.subject_key(subject, prefix)
    )


class Ingestor:
    """The one writer of incoming mail: batches concurrent submissions into shared commits."""

    def __init__(self, db: Database, max_batch: int = MAX_BATCH) -> None:
        self._db = db
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Incoming, asyncio.Future[Outcome]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ingest")

    async def stop(self) -> None:
        """Finish what was submitted, then stop."""
        await self._queue.join()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, item: Incoming) -> Outcome:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[tuple[Incoming, asyncio.Future[Outcome]]]) -> None:
        results: list[Outcome | BaseException] = []
        try:
            async with self._db.transaction() as tx:
                for index, (item, _) in enumerate(batch):
                    try:
                        async with self._db.savepoint(tx, f"m{index}"):
                            results.append(await ingest_one(tx, item))
                    except Exception as exc:  # one bad message must not cost the batch
                        log.exception("ingest failed for %s", item.parsed.message_id)
                        results.append(exc)
        except Exception as exc:  # the commit itself failed: nothing in the batch is stored
            log.exception("commit failed for a batch of %d", len(batch))
            results = [exc] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

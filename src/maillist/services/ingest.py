"""Store, thread and decide each incoming message, several sessions' messages per commit.

Every message is handled inside one SQLite transaction together with the messages of other SMTP
sessions that arrived meanwhile (group commit): one fsync serves them all, and each session's 250
is sent only after that commit. If any message of a batch fails, the batch is rolled back and
retried one message per transaction, so one failure costs only that message a 451. The batch is
one `store.write(fn)` (db/store.py): on SQLite BEGIN and COMMIT in the writer thread and the
statements between them on the event loop (two thread hops per batch, no fight over the GIL); on
PostgreSQL all of it in the writer thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from maillist import clock, policy, threads
from maillist.db import ingest as sql
from maillist.db import outbound as db_outbound
from maillist.db.store import Conn, Store
from maillist.errors import StoreBusy, StoreConflict
from maillist.mail import dmarc
from maillist.mail.mailparse import ParsedMessage
from maillist.mail.reading import Reading
from maillist.models import Authentication, Kind, MailingList, Verdict
from maillist.services.notify import Notifier
from maillist.services.requests import Mail, Requests
from maillist.templating import Templates

log = logging.getLogger("maillist.ingest")
MAX_BATCH = 64
IMPORTED = policy.Decision(Verdict.ACCEPT, ("imported from an mbox",))


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message for one recipient (a list or one of its sub-addresses), already parsed."""

    mlist: MailingList
    kind: Kind
    tag: str
    recipient: str
    envelope_from: str
    raw: bytes
    parsed: ParsedMessage
    client: str = ""  # the connecting client's IP address (rate limits for notices)
    auth: Authentication | None = None  # a post's DKIM/ARC/DMARC results (None: not checked)
    imported: bool = False  # history from an mbox: shown in the archive, never redistributed
    # a post the server a list came from was holding: held here for this reason, without the
    # notices a new hold sends (the old server already told its author and moderators)
    held: str = ""
    # a sub-address message's words or bounce (mail/reading.py)
    reading: Reading = field(default_factory=Reading)


@dataclass(frozen=True, slots=True)
class Outcome:
    row_id: int
    message_id: str
    verdict: str
    reasons: tuple[str, ...]
    duplicate: bool = False
    search: sql.SearchEntry | None = None  # the post's search entry, for the caller to write


def ingest_one(conn: Conn, item: Incoming, requests: Requests) -> Outcome:
    p = item.parsed
    lst = item.mlist
    facts: sql.PostFacts | None = None
    if item.kind == Kind.POST:
        chain = threads.reference_chain(p.references, p.in_reply_to, p.message_id)
        facts = sql.post_facts(conn, lst.id, [*chain, p.message_id], p.sender, p.body_digest)
        existing = facts.containers.get(p.message_id)
    else:
        existing = sql.lookup(conn, lst.id, item.kind, [p.message_id]).get(p.message_id)
    if existing is not None and not existing.placeholder:
        return Outcome(existing.row_id, p.message_id, existing.verdict, (), duplicate=True)
    at = p.date if item.imported else clock.stamp()  # imported threads keep their own times
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
    if facts is None:
        row = sql.insert_message(conn, lst.id, item.kind, p.message_id, fields)
        result = requests.handle(conn, _mail(item, row))
        sql.update_message(conn, row, {"verdict": result.verdict, "reasons": result.reason})
        return Outcome(row, p.message_id, result.verdict, (result.reason,))

    decision = (
        IMPORTED
        if item.imported
        else policy.Decision(Verdict.HOLD, (item.held,))
        if item.held
        else policy.decide(
            policy.Facts(
                mlist=lst,
                sender=p.sender,
                sender_problem=p.sender_problem,
                is_member=p.sender is not None and facts.is_member,
                list_ids=p.list_ids,
                x_loops=p.x_loops,
                auto_submitted=p.auto_submitted,
                precedence=p.precedence,
                autoreply=p.autoreply,
                came_back=facts.came_back,
                auth=item.auth,
            )
        )
    )
    # Only a delivered post claims its Message-ID (fills its placeholder, makes later copies
    # duplicates). A held or discarded one is stored beside whatever holds the id, so a stranger
    # who sends a member's upcoming id first cannot shadow the member's real post.
    claims = decision.verdict is Verdict.ACCEPT
    if not claims:
        again = sql.unclaimed_copy(conn, lst.id, p.message_id, p.sender or "")
        if again is not None:
            return Outcome(again.row_id, p.message_id, again.verdict, (), duplicate=True)
        existing = None
    key = threads.subject_key(p.subject, lst.subject_prefix)
    parent_row, thread_id, fresh = _place(conn, lst, existing, facts, p, at, key, claims=claims)
    fields.update(
        verdict=decision.verdict,
        reasons="; ".join(decision.reasons),
        parent_id=parent_row,
        thread_id=thread_id,
        claimed=int(claims),
    )
    if item.auth is not None:
        fields.update(
            auth=dmarc.summary(item.auth),
            author_policy=item.auth.policy,
            verified=int(item.auth.wears_badges(lst.badges)),
        )
    if existing is None:
        row = sql.insert_message(conn, lst.id, Kind.POST, p.message_id, fields)
    else:  # the placeholder that earlier replies hang from becomes this message
        row = existing.row_id
        sql.update_message(conn, row, fields)
    # Search finds a post by its author's account name (the name shown), else the name the
    # sender wrote (a non-member's post), and by the address.
    entry = (row, p.subject, p.text, f"{facts.author or p.sender_name} {p.sender or ''}".strip())
    if not fresh:  # a thread made just now for this message already has its name and time
        sql.touch_thread(conn, thread_id, at, p.subject, key, rename=parent_row is None)
    if decision.verdict is Verdict.HOLD:
        reason = "; ".join(decision.reasons)
        held_id = sql.hold(conn, row, lst.id, reason, at)
        if not item.held:
            requests.on_hold(conn, _mail(item, row), held_id, reason)
    elif decision.verdict is Verdict.ACCEPT and not item.imported:
        db_outbound.enqueue(conn, row, lst.id, at)  # the fan-out job, in the verdict's transaction
    return Outcome(row, p.message_id, decision.verdict, decision.reasons, search=entry)


def _place(
    conn: Conn,
    lst: MailingList,
    existing: sql.Known | None,
    facts: sql.PostFacts,
    p: ParsedMessage,
    at: str,
    key: str,
    *,
    claims: bool,
) -> tuple[int | None, int, bool]:
    """(parent row, thread, thread is new for this message) for a post. With threading headers:
    JWZ's container algorithm (threads.place) over the whole chain, stored as placeholders, links
    and merged threads. A post that does not claim its id (held, discarded) only hangs from what
    the list already has: it creates and links nothing. Without headers: the subject fallback."""
    chain = threads.reference_chain(p.references, p.in_reply_to, p.message_id)
    if not chain:
        return _place_by_subject(conn, lst, existing, p, at, key)
    known = facts.containers
    if not claims:
        parent = next((known[m] for m in reversed(chain) if m in known), None)
        if parent is None or parent.thread_id is None:
            return None, sql.create_thread(conn, lst.id, p.subject, key, at), True
        return parent.row_id, parent.thread_id, False
    decision = threads.place(p.message_id, chain, {m: c.parent for m, c in known.items()})
    # The threads this message's tree spans become one (the oldest).
    joined = sorted({t for m in decision.connected if m in known and (t := known[m].thread_id)})
    if joined:
        thread_id, fresh = joined[0], False
        for other in joined[1:]:
            sql.merge_threads(conn, thread_id, other)
    else:
        thread_id, fresh = sql.create_thread(conn, lst.id, p.subject, key, at), True
    rows = {m: c.row_id for m, c in known.items()}
    for mid in decision.create:
        rows[mid] = sql.insert_placeholder(conn, lst.id, mid, thread_id)
    for child, parent_mid in decision.links:
        sql.set_parent(conn, rows[child], rows[parent_mid])
    return (rows[decision.parent] if decision.parent else None), thread_id, fresh


def _place_by_subject(
    conn: Conn, lst: MailingList, existing: sql.Known | None, p: ParsedMessage, at: str, key: str
) -> tuple[int | None, int, bool]:
    """Clients that drop threading headers: "Re: <subject>" joins, as a reply to its first
    message, the thread with the same base subject that was active lately."""
    own_thread = existing.thread_id if existing is not None else None
    if threads.is_reply_subject(p.subject, lst.subject_prefix) and key:
        since = clock.iso(clock.now() - timedelta(days=threads.SUBJECT_FALLBACK_DAYS))
        found = sql.recent_thread_by_subject(conn, lst.id, key, since)
        root = sql.thread_root(conn, found) if found is not None and found != own_thread else None
        if found is not None and root is not None and (existing is None or root != existing.row_id):
            if own_thread is not None:
                sql.merge_threads(conn, found, own_thread)
            return root, found, False
    if own_thread is not None:
        return None, own_thread, False
    return None, sql.create_thread(conn, lst.id, p.subject, key, at), True


def _mail(item: Incoming, row: int) -> Mail:
    return Mail(
        item.mlist, item.kind, item.tag, row, item.envelope_from, item.client, item.raw,
        item.parsed, item.reading, item.auth,
    )  # fmt: skip


def ingest_each(conn: Conn, items: list[Incoming], requests: Requests) -> list[Outcome]:
    """All items inside the caller's transaction. Raises on the first failure: the caller rolls
    the batch back and retries each message alone (see Ingestor), so a failure costs one message."""
    return [ingest_one(conn, item, requests) for item in items]


def _store_batch(conn: Conn, items: list[Incoming], requests: Requests) -> list[Outcome]:
    """The batch's messages and their search entries: one transaction."""
    outcomes = ingest_each(conn, items, requests)
    entries = [o.search for o in outcomes if o.search is not None]
    if entries:
        sql.index_posts(conn, entries)
    return outcomes


CONFLICT_RETRIES = 5


class Ingestor:
    """Batches concurrent submissions into shared commits."""

    def __init__(
        self,
        store: Store,
        max_batch: int = MAX_BATCH,
        on_accept: Callable[[], None] | None = None,
        requests: Requests | None = None,
    ) -> None:
        self._db = store
        self._requests = requests or Requests(Notifier(Templates()))
        self._on_accept = on_accept
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
        self._queue.put_nowait((item, future))
        return await future

    async def _attempt(self, items: list[Incoming]) -> list[Outcome]:
        """The batch in one transaction. Another process (sharing a PostgreSQL database) may
        store the same Message-ID, or a post of the same thread, at the same moment: the unique
        keys refuse the loser's rows, and the redone transaction sees the winner's (a duplicate,
        a parent) and decides from them."""
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                return await self._db.write(
                    partial(_store_batch, items=items, requests=self._requests), urgent=True
                )
            except StoreConflict:
                if attempt == CONFLICT_RETRIES:
                    raise
                log.info("storing %d message(s) met another process's; redoing", len(items))
                await asyncio.sleep(random.uniform(0.001, 0.01) * (attempt + 1))
        raise AssertionError("unreachable")

    async def _store(self, items: list[Incoming]) -> list[Outcome | Exception]:
        """One transaction for the batch; if anything fails, the batch is rolled back and each
        message is tried in a transaction of its own, so only the bad one gets a 451."""
        try:
            return list(await self._attempt(items))
        except Exception as exc:
            if len(items) == 1 or isinstance(exc, StoreBusy):
                # One message, or the database held by someone else past the wait: trying each
                # message alone would only wait again. Every session gets its 451 and retries.
                log.exception("storing %d message(s) failed", len(items))
                return [exc] * len(items)
        results: list[Outcome | Exception] = []
        for item in items:
            results.extend(await self._store([item]))
        return results

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # One turn of the loop lets sessions whose DATA is already in hand join this commit.
            await asyncio.sleep(0)
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                items = [item for item, _ in batch]
                results = await self._store(items)
                if self._on_accept is not None and any(
                    isinstance(r, Outcome) and r.verdict == Verdict.ACCEPT and not r.duplicate
                    for r in results
                ):
                    self._on_accept()
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
            finally:
                for _ in batch:
                    self._queue.task_done()

"""The outbound queue: expand an accepted post into batches, claim due batches, record results.

Expansion (in slices) and bookkeeping are transactions of the store (db/store.py). One batch is one SMTP
transaction and its result is recorded as soon as it is known, so after a crash at most one
transaction per worker is sent twice and none is lost."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from maillist import clock
from maillist.config import LEASE_SECONDS
from maillist.db import badges as db_badges
from maillist.db import copies as db_copies
from maillist.db import deliveries as sql
from maillist.db import dkim as db_dkim
from maillist.db import lists as db_lists
from maillist.db import people as db_people
from maillist.db import site as db_site
from maillist.db import subscriptions as db_subs
from maillist.db.store import Conn, savepoint
from maillist.errors import StoreConflict
from maillist.mail import dmarc, loops, render, signing
from maillist.models import Authentication, BatchState, MailingList
from maillist.people import tokens
from maillist.services import bounces
from maillist.services.notify import Notifier
from maillist.smtpresult import Result
from maillist.templating import Templates

log = logging.getLogger("maillist.delivery")
FIRST_RETRY = 30.0  # seconds; with jitter the first retry comes within a minute
MAX_RETRY = 4 * 3600.0


def verp(mlist: MailingList, member: str) -> str:
    """LIST-bounces+member=example.org@DOMAIN: a bounce names the member who bounced."""
    local, _, domain = member.rpartition("@")
    return render.sub_address(mlist, "bounces", f"{local}={domain}")


def unsubscribe_url(mlist: MailingList, token: str) -> str:
    """Where a personalised copy's one-click link points: `maillist serve --http-port` answers
    it at this path (web_url is the public base URL that reaches that port)."""
    return f"{mlist.web_url}/unsubscribe/{mlist.address}/{token}"


def author_of(conn: Conn, source_sender: str, verified: bool = True) -> render.Author:
    """Name and badges come from the sending address's account (the name an admin set), never
    from anything the sender wrote: a From of "Alice - Licensee Badge" <bob@...> shows bob. A
    post that failed its From domain's DMARC check wears no badges (badges are a claim of trust)."""
    person = db_people.by_address(conn, source_sender) if source_sender else None
    if person is None:
        return render.Author(source_sender, "", (), verified)
    badges = tuple(db_badges.for_person(conn, person.id)) if verified else ()
    return render.Author(source_sender, person.name, badges, verified)


def shared_edits(post: sql.Post, mlist: MailingList, author: render.Author) -> render.Parts:
    """The edits every copy of `post` shares, DMARC mitigation included (dmarc.mitigation)."""
    how = dmarc.mitigation(mlist.dmarc, post.author_policy)
    return render.edited(post.raw, mlist, post.message_id, mitigation=how, author=author)


NO_RESULTS = dmarc.summary(Authentication())  # posts received before results were recorded


def build_copy(
    raw: bytes,
    message_id: str,
    mlist: MailingList,
    author: render.Author,
    templates: Templates,
    *,
    member: str | None = None,
    person_id: int | None = None,
    secret: str = "",
    base: render.Parts | None = None,
) -> bytes:
    """One list copy; `base` (render.edited, once per post) spares personalised copies the shared
    edits. A personalised copy (member and person_id given) carries the member's own
    unsubscribe token in its List-Unsubscribe header (unsubscribe_for). The footer names the
    plain `LIST-leave@`, which asks the sender's mailbox for a confirmation."""
    mailto, url = unsubscribe_for(mlist, member, person_id, secret)
    copy = personal_base(mlist, author, message_id, templates, member)
    if base is None:
        base = render.edited(raw, mlist, message_id)
    return render.finish(base, replace(copy, unsubscribe_mailto=mailto, unsubscribe_url=url))


def personal_base(
    mlist: MailingList,
    author: render.Author,
    message_id: str,
    templates: Templates,
    member: str | None = None,
) -> render.Copy:
    """What a post's copy is made of besides the member's own List-Unsubscribe fields."""
    leave = render.sub_address(mlist, "leave")
    footer = templates.footer(mlist, author, leave, member) if mlist.footer else None
    return render.Copy(
        mlist=mlist, author=author, message_id=message_id, footer=footer,
        unsubscribe_mailto=leave,
    )  # fmt: skip


def unsubscribe_for(
    mlist: MailingList, member: str | None, person_id: int | None, secret: str
) -> tuple[str, str]:
    """(mailto, one-click url) of a personalised copy's List-Unsubscribe: `LIST-leave+TOKEN@`
    and, with a web_url, an RFC 8058 link. Never in the body: a reply that quotes the whole post
    would hand the token (which acts alone) to everyone on the list. Without a member or a
    person: the plain `LIST-leave@` and no link."""
    if member is None or person_id is None or not secret:
        return render.sub_address(mlist, "leave"), ""
    token = tokens.member_token(secret, tokens.UNSUBSCRIBE, mlist.address, member, person_id)
    url = unsubscribe_url(mlist, token) if mlist.web_url else ""
    return render.sub_address(mlist, "leave", token), url


def batches(recipients: Sequence[str], size: int) -> list[tuple[str, ...]]:
    """Up to `size` recipients of one domain per batch, so each SMTP transaction serves one
    domain (recipients come in domain order; any others are grouped here)."""
    by_domain: dict[str, list[str]] = {}
    for address in recipients:
        by_domain.setdefault(address.rpartition("@")[2].lower(), []).append(address)
    out: list[tuple[str, ...]] = []
    for _, members in sorted(by_domain.items()):
        out.extend(tuple(members[i : i + size]) for i in range(0, len(members), size))
    return out


SLICE = 2_000  # recipients per expansion step
# Jobs per step: each is a cursor update and its batches (two round trips on PostgreSQL), so when
# many small posts waited behind a big one, one step's write still holds the lock briefly and a
# post's 250 does not wait for it (bench/latency.py --postgresql: 262 jobs in one step held it
# 110 ms).
JOBS_PER_STEP = 48
# LEASE_SECONDS (config.py): a claimed batch not recorded by then is due again (its sender hung)


@dataclass(frozen=True, slots=True)
class Slice:
    """The next members of one expanding job, read and rendered outside the write lock."""

    job: sql.Source
    list_id: int = 0
    groups: tuple[tuple[str, ...], ...] = ()  # the batches to write
    members: int = 0
    last: tuple[str, int] = ("", 0)  # the cursor after this slice
    done: bool = False
    first: bool = False  # the job's first slice: what every slice shares is written with it
    personalized: bool = False
    envelope_from: str = ""
    copy: bytes | None = None  # the shared copy, built with the first slice
    error: str = ""  # the job cannot be expanded: it is marked failed with this


def plan_slices(
    conn: Conn, lists: dict[int, MailingList], templates: Templates
) -> list[Slice] | None:
    """Read-only (store.read(..., heavy=True), services/sending.py): the oldest expanding jobs' next members, up to SLICE in
    all, grouped into batches, and a shared copy rendered for a job's first slice. All the
    reading and rendering happens here, outside the write lock; apply_slices then holds it for
    a few inserts only. None when no job is waiting."""
    jobs = sql.pending_jobs(conn, limit=JOBS_PER_STEP)
    if not jobs:
        return None
    budget = SLICE
    out: list[Slice] = []
    for source in jobs:
        if budget <= 0:
            break
        try:
            planned = _plan(conn, source, lists.get(source.list_id), templates, budget)
        except Exception as exc:
            log.exception("fan-out job %d (<%s>) failed", source.job_id, source.message_id)
            planned = Slice(source, error=f"expansion failed: {type(exc).__name__}: {exc}")
        out.append(planned)
        budget -= max(planned.members, 1)
    return out


def _plan(
    conn: Conn, source: sql.Source, mlist: MailingList | None, templates: Templates, limit: int
) -> Slice:
    if mlist is None:
        raise LookupError(f"list {source.list_id} is not in the directory")
    rows = db_subs.recipients_after(conn, mlist.id, source.sender, source.expanded_to, limit)
    members = [address for _, _, address in rows]
    first = source.expanded_to == ("", 0)
    copy = None
    if first and members and not mlist.personalize:
        post = sql.message_source(conn, source.message_row)  # the raw post, only when needed
        if post is None:
            raise LookupError(f"the post of job {source.job_id} is gone")
        author = author_of(conn, post.sender, post.verified)
        base = shared_edits(post, mlist, author)
        copy = build_copy(post.raw, post.message_id, mlist, author, templates, base=base)
        key = db_dkim.key_for(conn, mlist.domain)
        if key is not None:  # sealed once here, outside the write lock (3 RSA signatures)
            copy = signing.sign(copy, key, post.auth or NO_RESULTS)
    # Personalised copies are made (and remembered, mail/loops.py) as their batch is sent: one
    # SMTP transaction per member, several members per batch (one row, one claim, one record).
    groups = batches(members, mlist.batch_size)
    return Slice(
        source, mlist.id, tuple(groups), len(members), rows[-1][:2] if rows else source.expanded_to,
        done=len(rows) < limit, first=first, personalized=mlist.personalize, copy=copy,
        envelope_from="" if mlist.personalize else render.sub_address(mlist, "bounces"),
    )  # fmt: skip


def apply_slices(conn: Conn, slices: Sequence[Slice]) -> int:
    """Write planned slices (store.write(..., heavy=True)): each job's batches and cursor
    together. They are tried all in one savepoint; if any job fails they are written again one
    savepoint each, so a job that fails is rolled back alone, marked failed with the reason,
    and never holds up another. Returns the number of batches written."""
    now = clock.stamp()
    if any(planned.copy is not None for planned in slices):
        db_copies.forget(conn, clock.iso(clock.now() - timedelta(days=loops.KEEP_DAYS)))
    if len(slices) > 1:
        try:
            with savepoint(conn, "slices"):
                return sum(_apply(conn, planned, now) for planned in slices)
        except StoreConflict:
            raise  # another process at the same rows: the whole step is redone, nothing failed
        except Exception:
            pass  # one of them failed: each on its own below
    made = 0
    for planned in slices:
        try:
            with savepoint(conn, "job"):
                made += _apply(conn, planned, now)
        except StoreConflict:
            raise
        except Exception as exc:
            job = planned.job
            log.exception("fan-out job %d (<%s>) failed", job.job_id, job.message_id)
            sql.fail_job(conn, job.job_id, f"expansion failed: {type(exc).__name__}: {exc}")
    return made


def _apply(conn: Conn, planned: Slice, now: str) -> int:
    job = planned.job
    if planned.error:
        sql.fail_job(conn, job.job_id, planned.error)
        return 0
    shared = (planned.personalized, planned.envelope_from, planned.copy)
    if not sql.advance_job(
        conn, job.job_id, expanded_from=job.expanded_to, expanded_to=planned.last,
        recipients=planned.members, done=planned.done, shared=shared if planned.first else None,
    ):  # fmt: skip
        return 0
    if planned.copy is not None:
        db_copies.remember(conn, planned.list_id, [loops.body_digest(planned.copy)], now)
    return sql.add_batches(conn, job.job_id, planned.groups, now)


def claim(
    conn: Conn, limit: int = 1, now: datetime | None = None, lease: float = LEASE_SECONDS
) -> list[sql.Batch]:
    """Due batches for this sender until `lease` runs out; another process's live claims are
    passed over (db/deliveries.py), an expired one is taken over."""
    at = now or clock.now()
    return sql.claim(conn, clock.iso(at), clock.iso(at + timedelta(seconds=lease)), limit)


def release(conn: Conn, batch_ids: Sequence[int]) -> None:
    sql.release(conn, batch_ids, clock.iso(clock.now()))


def remember_copies(conn: Conn, list_id: int, digests: Sequence[bytes]) -> None:
    """The body digests of personalised copies as they were sent (mail/loops.py)."""
    db_copies.remember(conn, list_id, list(dict.fromkeys(digests)), clock.iso(clock.now()))


def fail_batch(conn: Conn, batch: sql.Batch, error: str) -> None:
    """A batch that cannot be sent at all (its post is gone): failed, with the reason."""
    sql.mark_failed(conn, batch.id, batch.recipients, error, clock.iso(clock.now()))


def _score_refusals(
    conn: Conn,
    job_id: int,
    list_id: int,
    failed: Sequence[tuple[str, str]],
    notifier: Notifier | None,
) -> None:
    """5xx refusals of members count as bounces (services/bounces.py); notices never do."""
    copy = sql.job_copy(conn, job_id)
    mlist = db_lists.by_id(conn, list_id)
    if copy is None or mlist is None or copy.notice:
        return
    for address, reply in failed:
        if reply[:1] == "5":
            bounces.refused(conn, mlist, copy.message_row, address, reply, notifier)


def backoff(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds before the next try: 30 s, 60 s, 120 s ... capped at 4 h, each with +-50% jitter."""
    base = min(FIRST_RETRY * float(2 ** max(attempts - 1, 0)), MAX_RETRY)
    jitter: float = (rng or random).uniform(0.5, 1.5)
    return base * jitter


def record(
    conn: Conn,
    batch: sql.Batch,
    list_id: int,
    result: Result,
    *,
    give_up_after: float,
    now: datetime | None = None,
    rng: random.Random | None = None,
    notifier: Notifier | None = None,
) -> BatchState:
    """Store what happened to one transaction; returns the batch's new state."""
    now = now or clock.now()
    at = clock.iso(now)
    if result.failed:
        sql.record_failures(conn, batch.job_id, list_id, result.failed, at)
        _score_refusals(conn, batch.job_id, list_id, result.failed, notifier)
    if not result.deferred:
        if result.sent or not result.failed:
            sql.mark_sent(conn, batch.id, at)
            return BatchState.SENT
        sql.mark_failed(conn, batch.id, [a for a, _ in result.failed], result.failed[0][1], at)
        return BatchState.FAILED
    waiting = [a for a, _ in result.deferred]
    error = result.deferred[0][1]
    created = clock.parse(batch.created_at)
    if (now - created).total_seconds() > give_up_after:
        sql.record_failures(
            conn, batch.job_id, list_id, [(a, f"gave up: {error}") for a in waiting], at
        )
        sql.mark_failed(
            conn, batch.id, waiting, f"gave up after {batch.attempts + 1} attempts: {error}", at
        )
        return BatchState.FAILED
    attempts = batch.attempts + 1
    next_at = clock.iso(now + timedelta(seconds=backoff(attempts, rng)))
    sql.mark_deferred(conn, batch.id, waiting, attempts, next_at, error, at)
    return BatchState.DEFERRED


Batch = sql.Batch


@dataclass(frozen=True, slots=True)
class SendJob:
    """One post as its senders need it: the shared copy, or what personalised copies are made of."""

    mlist: MailingList
    copy: sql.JobCopy
    raw: bytes
    message_id: str
    author: render.Author
    secret: str
    base: render.Parts
    person_ids: dict[str, int]  # lower-cased address -> person id, filled as batches are claimed
    dkim: signing.Keys | None = None  # the keys that sign personalised copies
    results: str = NO_RESULTS  # the post's authentication results on receipt (ARC)


def load_job(conn: Conn, job_id: int, lists: dict[int, MailingList]) -> SendJob | None:
    copy = sql.job_copy(conn, job_id)
    if copy is None:
        return None
    mlist = lists.get(copy.list_id)
    post = sql.message_source(conn, copy.message_row)
    if mlist is None or post is None:
        return None
    author = author_of(conn, post.sender, post.verified)
    if copy.rendered is not None and not copy.personalized:
        # Made already (a shared copy, a notice, a digest): the post is not edited again (a
        # notice's cause may be no post at all: a sign-in asked for on the web).
        base = render.Parts([], b"")
    else:
        base = shared_edits(post, mlist, author)
    people: dict[str, int] = {}  # personalised copies' tokens: see member_ids
    key = db_dkim.key_for(conn, mlist.domain) if copy.personalized else None
    # What the log names: the Message-ID of what is sent (a digest's or a notice's own, not that
    # of the post that caused it).
    sent_id = _own_id(copy.rendered) or post.message_id
    return SendJob(
        mlist, copy, post.raw or b"", sent_id, author, db_site.secret(conn), base, people, key,
        post.auth or NO_RESULTS,
    )  # fmt: skip


_MESSAGE_ID = re.compile(rb"(?im)^message-id:[ \t]*<([^<>\r\n]{1,250})>")


def _own_id(rendered: bytes | None) -> str:
    if not rendered:
        return ""
    head = rendered[: rendered.find(b"\r\n\r\n") if b"\r\n\r\n" in rendered else 8192]
    found = _MESSAGE_ID.search(head)
    return found.group(1).decode("utf-8", "replace") if found else ""


def member_ids(
    conn: Conn, jobs: Mapping[int, SendJob | None], claimed: Sequence[sql.Batch]
) -> None:
    """The person ids that claimed personalised batches need for their tokens, looked up as they
    are claimed (loading a 100,000-member list's whole map at once held the loop for 100 ms)."""
    wanted: dict[int, list[str]] = {}
    for batch in claimed:
        job = jobs.get(batch.job_id)
        if job is not None and job.copy.personalized:
            wanted.setdefault(batch.job_id, []).extend(batch.recipients)
    if wanted:
        found = db_people.ids_for(conn, [a for addresses in wanted.values() for a in addresses])
        for job_id, addresses in wanted.items():
            job = jobs[job_id]
            assert job is not None
            job.person_ids.update(
                {a.lower(): found[a.lower()] for a in addresses if a.lower() in found}
            )


def reset_sending(conn: Conn) -> int:
    return sql.reset_sending(conn, clock.iso(clock.now()))


def reclaim_dead(conn: Conn) -> int:
    """Batches claimed by a process that died since (several processes on one database)."""
    return sql.reclaim_dead(conn, clock.iso(clock.now()))

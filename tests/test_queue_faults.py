"""No batch stays in `sending`, no job blocks another, and the clock drives backoff and give-up.

In-process: the real ingest path, the real delivery workers and a real Maildir outbox behind a
relay that fails the way the pipelining client once did (a ValueError out of send)."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import dbutil
from conftest import CliFn
from maillist import clock
from maillist.config import LEASE_SECONDS
from maillist.db import Store
from maillist.delivery.relay import MaildirOutbox
from maillist.delivery.worker import DeliveryWorkers
from maillist.models import Posting
from maillist.services import deliveries, lists, members
from maillist.services.directory import ListDirectory
from maillist.services.ingest import Ingestor
from maillist.smtpresult import Result, everyone
from maillist.templating import Templates
from test_threading import deliver

WAIT = 30.0


class Flaky:
    """The outbox, except that a copy for one recipient raises as a buggy client would."""

    def __init__(self, path: Path, bad: str) -> None:
        self.outbox = MaildirOutbox(path)
        self.bad = bad
        self.calls = 0

    async def send(self, envelope_from: str, recipients: Sequence[str], data: bytes) -> Result:
        self.calls += 1
        if self.bad in recipients:
            raise ValueError("line too long in pipelined reply")
        return await self.outbox.send(envelope_from, recipients, data)

    async def send_each(self, items: Sequence[tuple[str, Sequence[str], bytes]]) -> list[Result]:
        return [await self.send(sender, recipients, data) for sender, recipients, data in items]

    async def close(self) -> None:
        return None


@asynccontextmanager
async def serving(db: Store, relay: Flaky) -> AsyncIterator[Ingestor]:
    workers = DeliveryWorkers(db, ListDirectory(db), relay, Templates(), connections=2)
    ingestor = Ingestor(db, on_accept=workers.notify)
    ingestor.start()
    await workers.start()
    try:
        yield ingestor
    finally:
        await ingestor.stop()
        await workers.stop(grace=5)


def rows(db: Store, sql: str, *args: object) -> list[tuple[object, ...]]:
    conn = dbutil.connect(db.path)
    try:
        return list(conn.execute(sql, args).fetchall())
    finally:
        conn.close()


async def until(check: object, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def make_team(db: Store, *, personalize: bool) -> None:
    await lists.create(db, "team@example.org", name="Team", posting=Posting.OPEN, actor="t")
    await lists.set_option(
        db, "team@example.org", "personalize", str(personalize).lower(), actor="t"
    )
    await members.add(
        db, "team@example.org", ["anne@example.org", "bob@example.org", "carl@example.org"],
        actor="t",
    )  # fmt: skip


@pytest.mark.parametrize("personalize", [True, False], ids=["personalised", "shared"])
async def test_an_exception_while_sending_defers_the_batch(
    db: Store, tmp_path: Path, personalize: bool, cli: CliFn
) -> None:
    await make_team(db, personalize=personalize)
    started = clock.iso(datetime.now(UTC))
    relay = Flaky(tmp_path / "outbox", bad="bob@example.org")
    async with serving(db, relay) as ingestor:
        await deliver(db, ingestor, "p1@x", "One", sender="anne@example.org")
        await deliver(db, ingestor, "p2@x", "Two", sender="carl@example.org")
        await until(
            lambda: (
                not rows(db, "SELECT 1 FROM outbound_jobs WHERE state = 'pending'")
                and not rows(
                    db, "SELECT 1 FROM outbound_batches WHERE state IN ('pending', 'sending')"
                )
            )
        )
    states = rows(db, "SELECT state, attempts, last_error, recipients FROM outbound_batches")
    stuck = [s for s in states if "bob@example.org" in str(s[3])]
    assert stuck and all(s[0] == "deferred" and s[1] == 1 for s in stuck), states
    assert all("ValueError: line too long" in str(s[2]) for s in stuck)
    delivered = len(list((tmp_path / "outbox" / "new").iterdir()))
    # Two posts to three members (authors included by default), one batch each. A shared batch
    # is one transaction: bob's fault holds his domain's others with him. A personalised batch
    # is a transaction a member: anne's copies went before bob's raised, and the batch waits
    # with every member (a fault of the transport itself: at most the batch in flight is sent
    # again, as after a crash).
    assert delivered == (2 if personalize else 0), states
    assert len(states) == 2
    # status shows when each error happened, not when the next attempt comes.
    errors = json.loads(cli("status", "--json").out)["last_errors"]
    nexts = {
        str(r[0])
        for r in rows(db, "SELECT next_attempt_at FROM outbound_batches WHERE state = 'deferred'")
    }
    assert errors and all(started <= e["at"] <= clock.iso(datetime.now(UTC)) for e in errors)
    assert all(e["at"] < min(nexts) for e in errors)


async def test_a_batch_whose_post_is_gone_fails_with_the_reason(db: Store, tmp_path: Path) -> None:
    await make_team(db, personalize=True)
    relay = Flaky(tmp_path / "outbox", bad="nobody")
    conn = dbutil.connect(db.path)
    if dbutil.POSTGRES:  # as SQLite's connection here: no foreign keys (a superuser's switch)
        conn.execute("SET session_replication_role = replica")
    conn.execute(
        "INSERT INTO outbound_jobs (id, message_id, list_id, state, personalized, created_at) "
        "VALUES (77, 9999, 1, 'expanded', 1, 't')"
    )  # a job whose message is gone (foreign keys are off on this connection)
    conn.execute(
        "INSERT INTO outbound_batches (job_id, recipients, next_attempt_at, created_at) "
        "VALUES (77, 'bob@example.org', '2000-01-01', '2000-01-01T00:00:00.000000Z')"
    )
    conn.commit()
    conn.close()
    async with serving(db, relay):
        await until(lambda: rows(db, "SELECT 1 FROM outbound_batches WHERE state = 'failed'"))
    [(state, error)] = rows(db, "SELECT state, last_error FROM outbound_batches")
    assert state == "failed" and "no longer exists" in str(error)
    assert relay.calls == 0


async def test_a_job_that_cannot_expand_fails_alone(
    db: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_team(db, personalize=False)
    real = deliveries.build_copy

    def build(raw: bytes, message_id: str, *args: object, **kw: object) -> bytes:
        if message_id == "bad@x":
            raise UnicodeError("a codec nobody expected")
        return real(raw, message_id, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(deliveries, "build_copy", build)
    relay = Flaky(tmp_path / "outbox", bad="nobody")
    async with serving(db, relay) as ingestor:
        await deliver(db, ingestor, "bad@x", "Bad", sender="anne@example.org")
        await deliver(db, ingestor, "good@x", "Good", sender="anne@example.org")
        await until(
            lambda: len(rows(db, "SELECT 1 FROM outbound_batches WHERE state = 'sent'")) == 1
        )
    jobs = rows(
        db, "SELECT m.message_id, j.state, j.last_error FROM outbound_jobs j "
        "JOIN messages m ON m.id = j.message_id ORDER BY j.id",
    )  # fmt: skip
    assert [j[:2] for j in jobs] == [("bad@x", "failed"), ("good@x", "expanded")]
    assert "UnicodeError: a codec nobody expected" in str(jobs[0][2])


def claim_at(db: Store, when: datetime) -> list[int]:
    conn = dbutil.connect(db.path)
    try:
        conn.execute("BEGIN")
        got = [b.id for b in deliveries.claim(conn, 10, now=when)]
        conn.execute("COMMIT")
        return got
    finally:
        conn.close()


async def test_a_claim_past_its_lease_is_stuck_shown_and_retried(db: Store, cli: CliFn) -> None:
    await make_team(db, personalize=False)
    conn = dbutil.connect(db.path)
    conn.execute(
        "INSERT INTO messages (list_id, message_id, raw, verdict) VALUES (1, 'm@x', ?, 'accept')",
        (b"\x00",),
    )
    conn.execute(
        "INSERT INTO outbound_jobs (message_id, list_id, state, created_at) VALUES (1, 1, 'expanded', 't')"
    )
    conn.execute(
        "INSERT INTO outbound_batches (job_id, recipients, next_attempt_at, created_at) "
        "VALUES (1, 'bob@example.org', '2000-01-01', 't')"
    )
    conn.commit()
    conn.close()
    now = datetime.now(UTC)
    assert claim_at(db, now) == [1]
    assert claim_at(db, now) == []  # leased: nobody else takes it
    view = json.loads(cli("queue", "--json").out)
    assert [(b["state"], b["stuck"]) for b in view["batches"]] == [("sending", False)]
    later = now + timedelta(seconds=LEASE_SECONDS + 1)
    assert claim_at(db, later) == [1]  # its sender hung: due again
    # An operator sees it as stuck once the lease is over, and `queue retry` makes it due.
    conn = dbutil.connect(db.path)
    conn.execute("UPDATE outbound_batches SET next_attempt_at = '2000-01-01'")
    conn.commit()
    conn.close()
    view = json.loads(cli("queue", "--json").out)
    assert [(b["state"], b["stuck"]) for b in view["batches"]] == [("sending", True)]
    assert "sending (stuck)" in cli("queue").out
    retried = cli("queue", "retry")
    assert retried.out.strip() == "0 deferred and 1 stuck batch(es) due now"
    assert rows(db, "SELECT state FROM outbound_batches") == [("pending",)]


def test_backoff_then_give_up_follow_the_clock(db_path: Path) -> None:
    created = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    batch = deliveries.Batch(1, 1, ("bob@example.org",), 0, clock.iso(created))
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute(
        "CREATE TABLE outbound_batches (id INTEGER PRIMARY KEY, state TEXT, recipients TEXT, "
        "attempts INTEGER, next_attempt_at TEXT, last_error TEXT, last_error_at TEXT, done_at TEXT)"
    )
    conn.execute("CREATE TABLE delivery_failures (job_id, list_id, address, reply, at)")
    conn.execute("INSERT INTO outbound_batches (id, state) VALUES (1, 'sending')")
    busy = everyone(batch.recipients, "451 4.7.1 try later", temporary=True)
    day = 86400.0
    rng = random.Random(7)
    when = created
    waits = []
    for attempt in range(12):
        state = deliveries.record(conn, batch, 1, busy, give_up_after=day, now=when, rng=rng)
        assert state == "deferred"
        (next_at, at, attempts) = conn.execute(
            "SELECT next_attempt_at, last_error_at, attempts FROM outbound_batches"
        ).fetchone()
        assert at == clock.iso(when) and attempts == attempt + 1
        wait = clock.parse(next_at) - when
        waits.append(wait.total_seconds())
        batch = deliveries.Batch(1, 1, batch.recipients, attempts, batch.created_at)
        when += wait
        if when - created > timedelta(seconds=day):
            break
    # 30 s doubling, capped at 4 h, each jittered +-50%; a day of retries is about a dozen.
    for n, wait_s in enumerate(waits):
        base = min(30.0 * 2**n, 4 * 3600.0)
        assert 0.5 * base <= wait_s <= 1.5 * base, (n, wait_s)
    assert 8 <= len(waits) <= 12
    state = deliveries.record(
        conn, batch, 1, busy, give_up_after=day, now=created + timedelta(seconds=day + 1)
    )
    assert state == "failed"
    (error,) = conn.execute("SELECT last_error FROM outbound_batches").fetchone()
    assert error.startswith("gave up after") and "451 4.7.1 try later" in error
    assert conn.execute("SELECT address FROM delivery_failures").fetchall() == [
        ("bob@example.org",)
    ]

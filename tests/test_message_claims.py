"""Only a delivered (or approved) post claims its Message-ID.

A stranger who sends a member's upcoming id first (CC'd on a draft, or guessing `alice-next@`)
used to make the member's real post a "duplicate" that was never delivered, or take over the
placeholder a thread's replies hang from. Now a held or discarded post is stored beside it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import dbutil
from maillist.db import Store
from maillist.errors import AlreadyDelivered
from maillist.models import Posting
from maillist.services import lists, members, moderation
from maillist.services.ingest import Ingestor
from test_threading import deliver, forest, ingesting


@pytest.fixture
async def team(db: Store) -> AsyncIterator[Ingestor]:
    await lists.create(db, "team@example.org", name="Team", posting=Posting.MEMBERS, actor="t")
    await members.add(db, "team@example.org", ["anne@example.org"], name="Anne", actor="t")
    async with ingesting(db) as ingestor:
        yield ingestor


def jobs(db: Store) -> list[str]:
    conn = dbutil.connect(db.path)
    try:
        return [
            r[0]
            for r in conn.execute(
                "SELECT m.message_id FROM outbound_jobs j JOIN messages m ON m.id = j.message_id "
                "WHERE j.notice = 0 ORDER BY j.id"
            )
        ]
    finally:
        conn.close()


async def test_a_strangers_held_post_does_not_shadow_the_members_post(
    db: Store, team: Ingestor
) -> None:
    first = await deliver(db, team, "next@x", "Agenda", sender="mallory@evil.example")
    assert first.verdict == "hold" and not first.duplicate
    real = await deliver(db, team, "next@x", "Agenda", sender="anne@example.org")
    assert real.verdict == "accept" and not real.duplicate
    assert jobs(db) == ["next@x"]  # the member's post is queued for delivery
    # The member's post is the one that now stands for the id: a copy of it is a duplicate.
    again = await deliver(db, team, "next@x", "Agenda", sender="anne@example.org")
    assert again.duplicate and again.row_id == real.row_id
    assert jobs(db) == ["next@x"]


async def test_a_held_post_does_not_take_a_threads_placeholder(db: Store, team: Ingestor) -> None:
    await deliver(db, team, "r1@x", "Re: Topic", refs="p@x", irt="p@x")
    assert await forest(db) == [[("?p", ["r1"])]]
    # A stranger's post with the parent's id is held, and leaves the placeholder alone.
    spoof = await deliver(db, team, "p@x", "Topic", sender="mallory@evil.example")
    assert spoof.verdict == "hold"
    assert await forest(db) == [[("?p", ["r1"])]]
    real = await deliver(db, team, "p@x", "Topic", date="Tue, 24 Nov 2026 09:00:00 +0000")
    assert real.verdict == "accept" and not real.duplicate
    assert await forest(db) == [[("p", ["r1"])]]


async def test_the_same_held_post_sent_twice_is_held_once(db: Store, team: Ingestor) -> None:
    one = await deliver(db, team, "s@x", "Hi", sender="stranger@example.net")
    two = await deliver(db, team, "s@x", "Hi", sender="stranger@example.net")
    assert two.duplicate and two.row_id == one.row_id
    assert len(await moderation.pending(db, "team@example.org")) == 1


async def test_approval_adopts_the_placeholder_and_its_replies(db: Store, team: Ingestor) -> None:
    await deliver(db, team, "p@x", "Topic", sender="stranger@example.net")  # held
    await deliver(db, team, "r1@x", "Re: Topic", refs="p@x", irt="p@x")
    await deliver(db, team, "r2@x", "Re: Topic", refs="p@x r1@x", irt="r1@x")
    assert await forest(db) == [[("?p", [("r1", ["r2"])])]]
    [held] = await moderation.pending(db, "team@example.org")
    await moderation.decide(db, held.id, "approved", actor="t")
    assert await forest(db) == [[("p", [("r1", ["r2"])])]]
    assert jobs(db) == ["r1@x", "r2@x", "p@x"]
    conn = dbutil.connect(db.path)
    claims = conn.execute("SELECT COUNT(*) FROM messages WHERE message_id = 'p@x'").fetchone()
    conn.close()
    assert claims == (1,)  # the placeholder went; the approved post stands for the id


async def test_approval_is_refused_when_a_delivered_post_holds_the_id(
    db: Store, team: Ingestor
) -> None:
    await deliver(db, team, "dup@x", "Topic", sender="stranger@example.net")  # held
    await deliver(db, team, "dup@x", "Topic", sender="anne@example.org")  # delivered
    [held] = await moderation.pending(db, "team@example.org")
    with pytest.raises(AlreadyDelivered, match="already delivered"):
        await moderation.decide(db, held.id, "approved", actor="t")
    assert [h.id for h in await moderation.pending(db, "team@example.org")] == [held.id]
    await moderation.decide(db, held.id, "discarded", actor="t")
    assert jobs(db) == ["dup@x"]

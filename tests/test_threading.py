"""Threading through the real ingest path: out of order, placeholders, cycles, subject fallback."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dbutil
from conftest import CliFn
from maillist.db import Store, open_store
from maillist.mail import mailparse
from maillist.mail.mailparse import Limits
from maillist.models import Kind, Posting
from maillist.services import badges, lists, members, messages
from maillist.services.directory import ListDirectory
from maillist.services.ingest import Incoming, Ingestor, Outcome
from maillist.threads import (
    Node,
    is_reply_subject,
    place,
    reference_chain,
    subject_key,
    would_loop,
)


@asynccontextmanager
async def ingesting(db: Store) -> AsyncIterator[Ingestor]:
    ingestor = Ingestor(db)
    ingestor.start()
    try:
        yield ingestor
    finally:
        await ingestor.stop()


@pytest.fixture
async def team(db: Store) -> AsyncIterator[Ingestor]:
    await lists.create(db, "team@example.org", name="Team", posting=Posting.OPEN, actor="t")
    await members.add(db, "team@example.org", ["anne@example.org"], name="Anne", actor="t")
    await badges.grant(db, "anne@example.org", "Licensee Badge", actor="t")
    async with ingesting(db) as ingestor:
        yield ingestor


async def deliver(
    db: Store,
    ingestor: Ingestor,
    mid: str,
    subject: str = "Topic",
    refs: str = "",
    irt: str = "",
    date: str = "Tue, 24 Nov 2026 10:00:00 +0000",
    sender: str = "anne@example.org",
) -> Outcome:
    headers = [f"From: {sender}", f"Subject: {subject}", f"Message-ID: <{mid}>", f"Date: {date}"]
    if refs:
        headers.append("References: " + " ".join(f"<{r}>" for r in refs.split()))
    if irt:
        headers.append(f"In-Reply-To: <{irt}>")
    raw = ("\r\n".join(headers) + "\r\n\r\nbody\r\n").encode()
    mlist, kind, tag = await ListDirectory(db).resolve("team@example.org")
    parsed = mailparse.prepare(raw, Limits(), received_at=datetime.now(UTC), domain="example.org")
    return await ingestor.submit(
        Incoming(mlist, kind, tag, "team@example.org", sender, raw, parsed)
    )


def shape(nodes: list[Node]) -> list[Any]:
    return [
        (("?" if n.placeholder else "") + n.message_id.split("@")[0], shape(n.replies)) if n.replies
        else ("?" if n.placeholder else "") + n.message_id.split("@")[0]
        for n in nodes
    ]  # fmt: skip


async def forest(db: Store) -> list[list[Any]]:
    return [shape(v.roots) for v in await messages.thread_views(db, "team@example.org")]


async def test_reply_before_parent_then_parent_arrives(db: Store, team: Ingestor) -> None:
    await deliver(db, team, "r1@x", "Re: Topic", refs="p@x", irt="p@x")
    assert await forest(db) == [[("?p", ["r1"])]]
    await deliver(
        db, team, "r2@x", "Re: Topic", refs="p@x", irt="p@x", date="Tue, 24 Nov 2026 11:00:00 +0000"
    )
    assert await forest(db) == [[("?p", ["r1", "r2"])]]
    await deliver(db, team, "p@x", "Topic", date="Tue, 24 Nov 2026 09:00:00 +0000")
    assert await forest(db) == [[("p", ["r1", "r2"])]]


async def test_grandchild_child_parent_in_reverse_order(db: Store, team: Ingestor) -> None:
    await deliver(
        db,
        team,
        "g@x",
        "Re: Topic",
        refs="p@x c@x",
        irt="c@x",
        date="Tue, 24 Nov 2026 12:00:00 +0000",
    )
    await deliver(
        db, team, "c@x", "Re: Topic", refs="p@x", irt="p@x", date="Tue, 24 Nov 2026 11:00:00 +0000"
    )
    await deliver(db, team, "p@x", "Topic", date="Tue, 24 Nov 2026 10:00:00 +0000")
    # g was filed under the placeholder for c, c under the placeholder for p: one tree in the end.
    assert await forest(db) == [[("p", [("c", ["g"])])]]
    views = await messages.thread_views(db, "team@example.org")
    assert len(views) == 1 and views[0].messages == 3 and views[0].thread.subject == "Topic"


async def test_last_known_reference_wins_over_in_reply_to(db: Store, team: Ingestor) -> None:
    await deliver(db, team, "a@x", "A")
    await deliver(db, team, "b@x", "Re: A", refs="a@x", irt="a@x")
    await deliver(db, team, "c@x", "Re: A", refs="a@x b@x unknown@x", irt="elsewhere@x")
    assert await forest(db) == [[("a", [("b", ["c"])])]]


async def test_in_reply_to_alone(db: Store, team: Ingestor) -> None:
    await deliver(db, team, "a@x", "A")
    await deliver(db, team, "b@x", "Re: A", irt="a@x")
    assert await forest(db) == [[("a", ["b"])]]


async def test_header_cycle_is_refused(db: Store, team: Ingestor) -> None:
    await deliver(db, team, "a@x", "Loop", refs="b@x", irt="b@x")
    await deliver(db, team, "b@x", "Loop", refs="a@x", irt="a@x")
    trees = await forest(db)
    assert trees == [[("b", ["a"])]] or trees == [[("a", ["b"])]]
    conn = dbutil.connect(db.path)
    parents = dict(conn.execute("SELECT id, parent_id FROM messages").fetchall())
    conn.close()
    for start in parents:  # walking up from any message ends at a root
        seen, node = set(), start
        while node is not None:
            assert node not in seen, f"loop through message row {node}"
            seen.add(node)
            node = parents.get(node)


async def test_self_reference_is_ignored(db: Store, team: Ingestor) -> None:
    await deliver(db, team, "s@x", "Self", refs="s@x", irt="s@x")
    assert await forest(db) == [["s"]]


async def test_duplicate_does_not_rethread(db: Store, team: Ingestor) -> None:
    await deliver(db, team, "a@x", "A")
    first = await deliver(db, team, "b@x", "Re: A", irt="a@x")
    again = await deliver(db, team, "b@x", "Re: A", irt="a@x")
    assert again.duplicate and again.row_id == first.row_id
    assert await forest(db) == [[("a", ["b"])]]


async def test_subject_fallback_joins_recent_thread(db: Store, team: Ingestor) -> None:
    await deliver(db, team, "t@x", "Rotations and roles")
    await deliver(db, team, "other@x", "Something else")
    await deliver(db, team, "lost@x", "RE: [Team] Rotations and roles")  # no threading headers
    await deliver(db, team, "same@x", "Rotations and roles")  # not a reply: its own thread
    trees = await forest(db)
    assert [("t", ["lost"])] in trees and ["same"] in trees and ["other"] in trees


async def test_subject_fallback_ignores_old_threads(db: Store, team: Ingestor) -> None:
    await deliver(db, team, "old@x", "Ancient topic")
    conn = dbutil.connect(db.path)
    conn.execute("UPDATE threads SET last_activity_at = '2020-01-01T00:00:00Z'")
    conn.commit()
    conn.close()
    await deliver(db, team, "late@x", "Re: Ancient topic")
    assert sorted(map(str, await forest(db))) == sorted(map(str, [["old"], ["late"]]))


async def test_listing_shows_authors_badges_and_newest_first(db: Store, team: Ingestor) -> None:
    await deliver(db, team, "first@x", "First", date="Mon, 23 Nov 2026 10:00:00 +0000")
    await deliver(db, team, "second@x", "Second", sender="Bob <bob@example.net>")
    await deliver(db, team, "reply@x", "Re: First", irt="first@x")  # activity moves First up
    views = await messages.thread_views(db, "team@example.org")
    assert [v.thread.subject for v in views] == ["First", "Second"]
    root = views[0].roots[0]
    assert (root.sender, root.sender_name, root.badges) == (
        "anne@example.org",
        "Anne",  # the account's name, as an admin set it
        ("Licensee Badge",),
    )
    # "Bob" is only what the sender wrote; his account has no name: the address is shown.
    assert views[1].roots[0].sender_name == "" and views[1].roots[0].badges == ()


async def test_held_parent_shows_as_placeholder(db: Store, team: Ingestor) -> None:
    await lists.set_option(db, "team@example.org", "posting", "members", actor="t")
    await deliver(db, team, "held@x", "Question", sender="stranger@example.net")
    await deliver(db, team, "answer@x", "Re: Question", irt="held@x")
    assert await forest(db) == [[("?held", ["answer"])]]


def test_threads_cli_json(run_cli: CliFn, db_path: Path) -> None:
    import asyncio

    async def build() -> None:
        database = await open_store(dbutil.location(db_path))
        await lists.create(database, "team@example.org", posting=Posting.OPEN, actor="t")
        await members.add(database, "team@example.org", ["anne@example.org"], actor="t")
        await badges.grant(database, "anne@example.org", "Training Badge", actor="t")
        async with ingesting(database) as ingestor:
            await deliver(database, ingestor, "r@x", "Re: Q", irt="q@x")
        await database.close()

    asyncio.run(build())
    result = run_cli("threads", "team@example.org", "--json")
    assert result.code == 0 and result.err == ""
    [thread] = json.loads(result.out)
    [root] = thread["roots"]
    assert root == {
        "message_id": "q@x",
        "placeholder": True,
        "replies": [
            {
                "message_id": "r@x",
                "subject": "Re: Q",
                "author": {"name": "", "address": "anne@example.org"},
                "date": "2026-11-24T10:00:00.000000Z",
                "badges": ["Training Badge"],
                "replies": [],
            }
        ],
    }
    text = run_cli("threads", "team@example.org")
    assert "(not received)" in text.out and "Training Badge" in text.out


# Pure pieces, property-tested.
ids = st.from_regex(r"[a-z0-9]{1,8}@[a-z]{1,5}\.org", fullmatch=True)


@given(st.lists(ids, max_size=10), ids | st.just(""), ids)
def test_reference_chain(refs: list[str], irt: str, own: str) -> None:
    chain = reference_chain(refs, irt, own)
    assert own not in chain and len(set(chain)) == len(chain)
    assert [r for r in chain if r in refs] == list(dict.fromkeys(r for r in refs if r != own))
    if irt and irt != own:
        assert irt in chain


@given(st.lists(ids, max_size=8), ids, st.dictionaries(ids, ids | st.none(), max_size=8))
def test_place_never_makes_a_loop(chain: list[str], own: str, known: dict[str, str | None]) -> None:
    chain = reference_chain(chain, "", own)
    decision = place(own, chain, known)
    parents = dict(known) | dict.fromkeys(decision.create) | dict(decision.links)
    parents[own] = decision.parent
    assert set(decision.create).isdisjoint(known)
    for child, _ in decision.links:
        assert known.get(child) is None  # only parentless containers are linked
    if not any(would_loop(a, b, known) for a, b in known.items() if b):  # a sound start
        for start in parents:
            seen: set[str] = set()
            node: str | None = start
            while node is not None:
                assert node not in seen
                seen.add(node)
                node = parents.get(node)


@settings(max_examples=200)
@given(
    st.dictionaries(st.integers(0, 30), st.integers(0, 30)), st.integers(0, 30), st.integers(0, 30)
)
def test_would_loop_terminates_and_is_right(
    parents: dict[int, int], child: int, parent: int
) -> None:
    named = {str(k): str(v) for k, v in parents.items()}
    result = would_loop(str(child), str(parent), named)
    node: int | None = parent
    seen = set()
    while node is not None and node not in seen and node != child:
        seen.add(node)
        node = parents.get(node)
    assert result == (node is not None)


@pytest.mark.parametrize(
    ("subject", "key", "reply"),
    [
        ("Re: [Team] Hello", "hello", True),
        ("[Team] Re: Re: Hello", "hello", True),
        ("AW: Hello", "hello", True),
        ("Fwd: Hello", "hello", False),
        ("Hello", "hello", False),
        ("Re:Hello  world", "hello world", True),
    ],
)
def test_subject_rules(subject: str, key: str, reply: bool) -> None:
    assert subject_key(subject, "[Team]") == key
    assert is_reply_subject(subject, "[Team]") is reply


async def test_one_bad_message_fails_alone_in_a_batch(db: Store, team: Ingestor) -> None:
    """A message that cannot be stored (here: its list vanished) gets an error; the rest of its
    batch is stored all the same."""
    import asyncio
    import dataclasses

    good, _, _ = await ListDirectory(db).resolve("team@example.org")
    ghost = dataclasses.replace(good, id=999_999)

    def item(mlist: Any, mid: str) -> Incoming:
        raw = f"From: anne@example.org\r\nMessage-ID: <{mid}>\r\nSubject: s\r\n\r\nb\r\n".encode()
        parsed = mailparse.prepare(raw, Limits(), received_at=datetime.now(UTC), domain="x.org")
        return Incoming(mlist, Kind.POST, "", "team@example.org", "anne@example.org", raw, parsed)

    results = await asyncio.gather(
        team.submit(item(good, "ok1@x")),
        team.submit(item(ghost, "bad@x")),
        team.submit(item(good, "ok2@x")),
        return_exceptions=True,
    )
    assert isinstance(results[0], Outcome) and isinstance(results[2], Outcome)
    assert type(results[1]).__name__ in {"IntegrityError", "ForeignKeyViolation"}, results[1]
    assert sorted(map(str, await forest(db))) == sorted(map(str, [["ok1"], ["ok2"]]))


@dbutil.sqlite_only
async def test_write_lock_held_by_another_process_is_waited_for(db: Store, team: Ingestor) -> None:
    """An admin command holding the write lock delays a commit; it neither fails nor blocks the loop."""
    import asyncio

    other = sqlite3.connect(db.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    loop = asyncio.get_running_loop()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    counting = asyncio.create_task(ticker())
    loop.call_later(0.3, other.execute, "COMMIT")
    try:
        outcome = await asyncio.wait_for(deliver(db, team, "late-lock@x", "Locked"), 10)
    finally:
        counting.cancel()
        other.close()
    assert outcome.verdict == "accept"
    assert ticks >= 10  # the event loop kept running while the commit waited for the lock


@dbutil.sqlite_only
async def test_lock_held_past_the_wait_fails_the_batch_once(
    db: Store, team: Ingestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the lock wait every session of the batch gets its error at once (a 451), without each
    message waiting again on its own; nothing is half-stored."""
    import asyncio
    import time as clock

    from maillist.errors import StoreBusy

    monkeypatch.setattr("maillist.db.store.LOCK_WAIT_SECONDS", 0.3)
    other = sqlite3.connect(db.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        started = clock.monotonic()
        results = await asyncio.gather(
            *(deliver(db, team, f"busy-{n}@x", "Busy") for n in range(3)), return_exceptions=True
        )
        elapsed = clock.monotonic() - started
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert all(isinstance(r, StoreBusy) for r in results), results
    assert elapsed < 3.0  # one wait for the batch, not one per message
    assert await forest(db) == []


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[list[int | None], list[bool], list[int], set[int]]:
    """A thread (each message's parent index), which messages send only In-Reply-To, the order
    they arrive in, and which never arrive: the first message may always be missing; others only
    when every message carries its whole References chain (else nothing tells where they go)."""
    size = draw(st.integers(2, 7))
    parents: list[int | None] = [None] + [draw(st.integers(0, i - 1)) for i in range(1, size)]
    irt_only = [draw(st.booleans()) for _ in range(size)]
    if any(irt_only):
        missing = {0} if draw(st.booleans()) else set()
    else:
        missing = draw(st.sets(st.integers(0, size - 1), max_size=size - 1))
    order = draw(st.permutations([i for i in range(size) if i not in missing]))
    return parents, irt_only, order, missing


def expected_shape(parents: list[int | None], missing: set[int]) -> list[Any]:
    """The thread as `threads` shows it: a missing first message as a placeholder root, any other
    missing message's replies under its own parent (JWZ's pruning)."""

    def nodes(i: int) -> list[tuple[int, Any]]:
        kids = sorted(kid for j, p in enumerate(parents) if p == i for kid in nodes(j))
        shapes = [shape for _, shape in kids]
        if i in missing and i != 0:
            return kids
        if i in missing and not shapes:
            return []
        name = ("?" if i in missing else "") + f"m{i}"
        return [(i, (name, shapes) if shapes else name)]

    return [shape for _, shape in nodes(0)]


@settings(max_examples=60, deadline=None)
@given(arrivals())
def test_any_arrival_order_gives_the_same_tree(
    case: tuple[list[int | None], list[bool], list[int], set[int]],
) -> None:
    """JWZ over the whole References chain: whichever order a thread's messages arrive in (some
    possibly never), the stored tree is the thread's own, under one placeholder for a missing
    first message."""
    parents, irt_only, order, missing = case

    def chain(i: int) -> list[int]:
        up: list[int] = []
        parent = parents[i]
        while parent is not None:
            up.insert(0, parent)
            parent = parents[parent]
        return up

    async def run(path: Path) -> list[Any]:
        db = await open_store(dbutil.location(path))
        try:
            await lists.create(db, "team@example.org", posting=Posting.OPEN, actor="t")
            async with ingesting(db) as ingestor:
                for i in order:
                    ancestry = chain(i)
                    await deliver(
                        db, ingestor, f"m{i}@x", "Re: Topic" if i else "Topic",
                        refs="" if irt_only[i] else " ".join(f"m{a}@x" for a in ancestry),
                        irt=f"m{ancestry[-1]}@x" if ancestry else "",
                        date=f"Tue, 24 Nov 2026 10:{i:02d}:00 +0000",
                    )  # fmt: skip
            return await forest(db)
        finally:
            await db.close()

    with tempfile.TemporaryDirectory() as tmp:
        trees = asyncio.run(run(Path(tmp) / "t.db"))
    assert trees == [expected_shape(parents, missing)]

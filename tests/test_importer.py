"""The import service on the suite's own store: one transaction per list (a failure anywhere,
the archive included, leaves nothing), people already on the site stay the same person with
their own name, a person in two delivery modes is one member with the choice named, and a value
maillist would refuse is reported and not carried over."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from maillist.db import Store
from maillist.errors import BadInput, UnknownList
from maillist.models import Mode, Role
from maillist.services import importer, lists, members
from maillist.sources.plan import Archived, ListPlan, Subscriber

POST = (b"From: Anne <anne@example.org>\r\nSubject: One\r\nMessage-ID: <one@example.org>\r\n"
        b"Date: Tue, 02 Jan 2024 10:00:00 +0000\r\n\r\nText.\r\n")  # fmt: skip


def plan(address: str = "team@example.org") -> ListPlan:
    found = ListPlan(source="test", address=address)
    found.keep("subject_prefix", "[t]", "prefix")
    found.keep("max_message_size", "huge", "maxmailsize")
    found.people += [
        Subscriber("anne@example.org", "line 1", name="Anne From Source"),
        Subscriber("bob@example.org", "line 2"),
        Subscriber("bob@example.org", "digesters line 1", mode=Mode.DIGEST),
        Subscriber("boss@example.org", "owner line 1", role=Role.OWNER, receives=False),
        Subscriber("not an address", "line 3"),
    ]
    return found


def failing_archive(cap: int) -> Iterator[Archived]:
    yield Archived("archive/1", POST, len(POST))
    raise BadInput("cannot read archive/2: Permission denied")


async def test_a_failure_in_the_archive_leaves_nothing_half_imported(db: Store) -> None:
    broken = plan()
    broken.archive = failing_archive
    with pytest.raises(BadInput, match="archive/2"):
        await importer.apply(db, broken, actor="test")
    assert await lists.all_lists(db) == []  # not the list, its settings, people or the post
    with pytest.raises(UnknownList):
        await members.members(db, "team@example.org")


async def test_people_on_the_site_stay_themselves_and_choices_are_named(db: Store) -> None:
    await lists.create(db, "other@example.org", actor="test")
    await members.add(db, "other@example.org", ["anne@example.org"], name="Anne Own", actor="t")
    report = await importer.apply(db, plan(), actor="test")
    assert report.created and report.new_people == 2  # bob and boss; anne was known
    got = {
        m.address: (m.name, m.role, m.mode) for m in await members.members(db, "team@example.org")
    }
    assert got == {
        "anne@example.org": ("Anne Own", Role.MEMBER, Mode.REGULAR),  # her own name stays
        "bob@example.org": ("", Role.MEMBER, Mode.REGULAR),
        "boss@example.org": ("", Role.OWNER, Mode.NOMAIL),
    }
    assert any("bob@example.org is subscribed digest and regular" in x for x in report.left_behind)
    assert any(p.startswith("line 3:") for p in report.problems)
    assert any("maxmailsize: not carried over: bad value 'huge'" in p for p in report.problems)
    assert report.settings == ["subject_prefix: '[team]' -> '[t]' (from prefix)"]


async def test_into_fills_an_existing_list_and_only_an_existing_one(db: Store) -> None:
    with pytest.raises(UnknownList, match="--into"):
        await importer.apply(db, plan(), into="new@example.org", actor="test")
    await lists.create(db, "new@example.org", actor="test")
    report = await importer.apply(db, plan(), into="New@Example.org", actor="test")
    assert not report.created and report.list_address == "new@example.org"
    assert sum(report.added.values()) == 3
    again = await importer.apply(db, plan(), into="new@example.org", actor="test")
    assert sum(again.added.values()) == 0 and again.already == 3 and again.settings == []

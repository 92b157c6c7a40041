"""The service layer in-process: what the CLI and (later) the SMTP server both rely on."""

from __future__ import annotations

import pytest

from maillist.db import Store
from maillist.errors import AlreadyMember, BadgeError, DuplicateList, UnknownList, UnknownPerson
from maillist.models import Mode, Posting, Role
from maillist.services import audit, badges, lists, members


async def test_badges_follow_a_person_to_every_list(db: Store) -> None:
    for address in ("a@example.org", "b@example.org"):
        await lists.create(db, address, actor="t")
    await members.add(db, "a@example.org", ["Anne@Example.org"], name="Anne", actor="t")
    await members.add(db, "b@example.org", ["anne@EXAMPLE.ORG"], actor="t")
    await badges.grant(db, "anne@example.org", "Licensee Badge", actor="t")
    await badges.grant(db, "ANNE@example.org", "Training Badge", actor="t")
    for address in ("a@example.org", "b@example.org"):
        (anne,) = await members.members(db, address)
        # One person site-wide: the first spelling of the address is kept, identity ignores case.
        assert anne.address == "Anne@example.org"
        assert anne.name == "Anne"
        assert anne.badges == ("Licensee Badge", "Training Badge")
    assert [g.badge for g in await badges.grants(db, "anne@example.org")] == [
        "Licensee Badge", "Training Badge"
    ]  # fmt: skip
    await badges.revoke(db, "anne@example.org", "licensee badge", actor="t")
    assert [g.badge for g in await badges.grants(db, "anne@example.org")] == ["Training Badge"]
    assert [b.name for b in await badges.summary(db)] == ["Training Badge"]


async def test_badges_of_an_unknown_address_is_an_error(db: Store) -> None:
    with pytest.raises(UnknownPerson):
        await badges.grants(db, "nobody@example.org")


async def test_grant_needs_a_known_person(db: Store) -> None:
    with pytest.raises(UnknownPerson):
        await badges.grant(db, "ghost@example.org", "X", actor="t")


async def test_badge_name_whitespace_is_collapsed_and_duplicates_refused(db: Store) -> None:
    await lists.create(db, "a@example.org", actor="t")
    await members.add(db, "a@example.org", ["x@example.org"], actor="t")
    grant = await badges.grant(db, "x@example.org", "  Training   Badge ", actor="t")
    assert grant.badge == "Training Badge"
    with pytest.raises(BadgeError):
        await badges.grant(db, "x@example.org", "training badge", actor="t")


async def test_add_is_all_or_nothing(db: Store) -> None:
    await lists.create(db, "a@example.org", actor="t")
    await members.add(db, "a@example.org", ["x@example.org"], actor="t")
    with pytest.raises(AlreadyMember):
        await members.add(db, "a@example.org", ["new@example.org", "X@example.org"], actor="t")
    assert [m.address for m in await members.members(db, "a@example.org")] == ["x@example.org"]


async def test_roles_modes_and_repeated_addresses(db: Store) -> None:
    await lists.create(db, "a@example.org", posting=Posting.MODERATED, actor="t")
    added = await members.add(
        db,
        "a@example.org",
        ["m@example.org", "M@example.org"],
        role=Role.MODERATOR,
        mode=Mode.NOMAIL,
        actor="t",
    )
    assert added == ["m@example.org"]
    (m,) = await members.members(db, "a@example.org")
    assert (m.role, m.mode) == (Role.MODERATOR, Mode.NOMAIL)
    assert (await lists.show(db, "a@example.org")).moderators == 1


async def test_delete_list_keeps_people_and_badges(db: Store) -> None:
    await lists.create(db, "a@example.org", actor="t")
    await lists.create(db, "b@example.org", actor="t")
    await members.add(db, "a@example.org", ["x@example.org"], actor="t")
    await badges.grant(db, "x@example.org", "Licensee Badge", actor="t")
    gone = await lists.delete(db, "a@example.org", actor="t")
    assert gone.members == 1
    with pytest.raises(UnknownList):
        await lists.show(db, "a@example.org")
    await members.add(db, "b@example.org", ["x@example.org"], actor="t")
    (x,) = await members.members(db, "b@example.org")
    assert x.badges == ("Licensee Badge",)


async def test_duplicate_list_is_case_insensitive(db: Store) -> None:
    await lists.create(db, "Team@example.org", actor="t")
    with pytest.raises(DuplicateList):
        await lists.create(db, "team@EXAMPLE.org", actor="t")


async def test_set_options_are_typed(db: Store) -> None:
    await lists.create(db, "a@example.org", actor="t")
    assert (
        await lists.set_option(db, "a@example.org", "max-message-size", "2M", actor="t")
        == 2 * 1024 * 1024
    )
    assert await lists.set_option(db, "a@example.org", "personalize", "yes", actor="t") is True
    assert await lists.set_option(db, "a@example.org", "reply_to", "List", actor="t") == "list"
    shown = (await lists.show(db, "a@example.org")).list
    assert (shown.max_message_size, shown.personalize, shown.reply_to) == (2097152, True, "list")


async def test_audit_log_records_who_did_what(db: Store) -> None:
    await lists.create(db, "a@example.org", actor="cli:alice")
    await members.add(db, "a@example.org", ["x@example.org"], actor="cli:bob")
    await badges.grant(db, "x@example.org", "Training Badge", actor="cli:alice")
    entries = await audit.recent(db, 10)
    assert [(e.actor, e.action, e.target) for e in entries] == [
        ("cli:alice", "badges.grant", "x@example.org"),
        ("cli:bob", "members.add", "a@example.org"),
        ("cli:alice", "lists.create", "a@example.org"),
    ]

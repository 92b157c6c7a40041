"""`maillist demo`: a small list with members and badges, so a new user sees the shape at once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from maillist.cli.lazy import lazy
from maillist.cli.output import say
from maillist.cli.runtime import run
from maillist.config import Config, describe
from maillist.errors import DuplicateList
from maillist.models import Role

if TYPE_CHECKING:
    from maillist.db.store import Store
    from maillist.services import badges, lists, members
else:
    badges = lazy("maillist.services.badges")
    lists = lazy("maillist.services.lists")
    members = lazy("maillist.services.members")

PEOPLE = (
    ("madamos@example.org", "Mark Adamos", Role.OWNER, ("Licensee Badge",)),
    ("baritony@example.org", "BariTony", Role.MEMBER, ("Licensee Badge", "Training Badge")),
    ("dolores@example.net", "Dolores Reyes", Role.MODERATOR, ()),
    ("kai@example.com", "Kai Lindqvist", Role.MEMBER, ("Training Badge",)),
)


def demo(
    ctx: typer.Context,
    address: Annotated[
        str, typer.Option(help="Address of the demo list.")
    ] = "managers@example.org",
) -> None:
    """Create a demo list with four members and a few badges (skipped if it already exists)."""

    async def build(db: Store, cfg: Config) -> bool:
        try:
            await lists.create(
                db, address, name="Managers", description="Demo discussion list", actor=cfg.actor
            )
        except DuplicateList:
            return False
        for who, name, role, granted in PEOPLE:
            await members.add(db, address, [who], name=name, role=role, actor=cfg.actor)
            for badge in granted:
                await badges.grant(db, who, badge, actor=cfg.actor)
        return True

    cfg = ctx.find_root().obj
    created = run(ctx, build, create=True)
    where = describe(cfg.db) if isinstance(cfg, Config) else "the database"
    if created:
        say(f"created demo list {address} in {where} with {len(PEOPLE)} members:")
    else:
        say(f"demo list {address} already exists in {where}:")
    for who, name, role, granted in PEOPLE:
        badge_text = " - " + ", ".join(granted) if granted else ""
        say(f"  {name} <{who}> ({role.value}){badge_text}")
    say(
        f"Post to it with any SMTP client once `maillist serve` runs; see: maillist threads {address}"
    )

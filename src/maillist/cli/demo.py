"""`maillist demo`: a small list with members and badges, so a new user sees the shape at once."""

from __future__ import annotations

import tempfile
from pathlib import Path
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
    from maillist.services import badges, lists, mboxio, members
else:
    badges = lazy("maillist.services.badges")
    lists = lazy("maillist.services.lists")
    members = lazy("maillist.services.members")
    mboxio = lazy("maillist.services.mboxio")

PEOPLE = (
    ("madamos@example.org", "Mark Adamos", Role.OWNER, ("Licensee Badge",)),
    ("baritony@example.org", "BariTony", Role.MEMBER, ("Licensee Badge", "Training Badge")),
    ("dolores@example.net", "Dolores Reyes", Role.MODERATOR, ()),
    ("kai@example.com", "Kai Lindqvist", Role.MEMBER, ("Training Badge",)),
)


HISTORY = (  # (author, subject, text, replying to): the demo archive's first thread
    ("madamos@example.org", "How do you run your one-on-ones?",
     "We are a new team and I want the weekly one-on-ones to be worth everyone's time.\n"
     "What do you put on the agenda, and who writes it?", None),
    ("baritony@example.org", "Re: How do you run your one-on-ones?",
     "Their agenda first, mine second, the future last. They write it; I keep notes.\n"
     "Rotated it a few times before it stuck.", 0),
    ("kai@example.com", "Re: How do you run your one-on-ones?",
     "> Their agenda first, mine second, the future last.\n\n"
     "This. And never cancel one: move it, but never cancel it.", 1),
    ("dolores@example.net", "Re: How do you run your one-on-ones?",
     "Thirty minutes, same time each week, and we walk when we can.", 0),
)  # fmt: skip


def _history(address: str) -> bytes:
    """The demo thread as an mbox, so it is stored as any imported history is."""
    out = []
    for n, (who, subject, text, parent) in enumerate(HISTORY):
        head = [
            f"From: {who}", f"To: {address}", f"Subject: {subject}",
            f"Message-ID: <demo-{n}@example.org>", f"Date: Tue, 1 Dec 2026 1{n}:00:00 +0000",
        ]  # fmt: skip
        if parent is not None:
            head.append(f"In-Reply-To: <demo-{parent}@example.org>")
        out.append(f"From {who} Tue Dec  1 1{n}:00:00 2026\n" + "\n".join(head) + f"\n\n{text}\n")
    return "\n".join(out).encode()


def demo(
    ctx: typer.Context,
    address: Annotated[
        str, typer.Option(help="Address of the demo list.")
    ] = "managers@example.org",
    web_url: Annotated[
        str,
        typer.Option(
            help="Where `serve --http-port` is reached: the demo archive goes public there."
        ),
    ] = "",
) -> None:
    """Create a demo list with four members, a few badges and a first thread (skipped if it
    already exists). With --web-url its archive is public at that address."""

    async def build(db: Store, cfg: Config) -> bool:
        try:
            await lists.create(
                db, address, name="Managers", description="Demo discussion list", actor=cfg.actor
            )
        except DuplicateList:
            created = False
        else:
            created = True
            for who, name, role, granted in PEOPLE:
                await members.add(db, address, [who], name=name, role=role, actor=cfg.actor)
                for badge in granted:
                    await badges.grant(db, who, badge, actor=cfg.actor)
            await lists.set_option(db, address, "badges", "unless-forged", actor=cfg.actor)
            with tempfile.TemporaryDirectory() as where:
                history = Path(where) / "demo.mbox"
                history.write_bytes(_history(address))
                await mboxio.import_mbox(db, address, history)
        if web_url:
            await lists.set_option(db, address, "web_url", web_url, actor=cfg.actor)
            await lists.set_option(db, address, "archive", "public", actor=cfg.actor)
        return created

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
    if web_url:
        say(f"Its archive (public): {web_url.rstrip('/')}/lists/{address}/")

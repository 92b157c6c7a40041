"""`maillist badges ...`: site-wide badges that follow a person to every list."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from maillist.cli.lazy import lazy
from maillist.cli.output import JsonOption, emit_json, note, say, table
from maillist.cli.runtime import run

if TYPE_CHECKING:
    from maillist.services import badges as svc
else:
    svc = lazy("maillist.services.badges")

app = typer.Typer(
    rich_markup_mode=None,
    help="Grant and revoke site-wide badges (e.g. 'Licensee Badge') shown with a person's posts.",
    no_args_is_help=True,
)
AddressArg = Annotated[str, typer.Argument(help="The person's address.")]
BadgeArg = Annotated[str, typer.Argument(help="The badge's name, e.g. 'Training Badge'.")]


@app.command("grant")
def grant(
    ctx: typer.Context,
    address: AddressArg,
    badge: BadgeArg,
    allow_confusable: Annotated[
        bool,
        typer.Option(
            "--allow-confusable",
            help="Grant it even if the address mixes scripts or looks like another person's.",
        ),
    ] = False,
) -> None:
    """Give a person a badge; it appears with their posts on every list."""
    g = run(
        ctx,
        lambda db, cfg: svc.grant(
            db, address, badge, actor=cfg.actor, allow_confusable=allow_confusable
        ),
    )
    say(f"granted {g.badge!r} to {g.address}")


@app.command("revoke")
def revoke(ctx: typer.Context, address: AddressArg, badge: BadgeArg) -> None:
    """Take a badge away from a person."""
    run(ctx, lambda db, cfg: svc.revoke(db, address, badge, actor=cfg.actor))
    say(f"revoked {badge.strip()!r} from {address.strip()}")


@app.command("list")
def list_(
    ctx: typer.Context,
    address: Annotated[
        str | None, typer.Argument(help="Only this person's badges (default: every grant).")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Badge grants: who holds which badge, since when, granted by whom."""
    grants = run(ctx, lambda db, cfg: svc.grants(db, address))
    if json:
        emit_json([asdict(g) for g in grants])
        return
    if not grants:
        note("no badges granted" + (f" to {address}" if address else ""))
        return
    table(
        ("badge", "address", "name", "granted_at", "granted_by"),
        [(g.badge, g.address, g.name, g.granted_at, g.granted_by) for g in grants],
    )


@app.command("set")
def set_style(
    ctx: typer.Context,
    badge: BadgeArg,
    colour: Annotated[
        str | None, typer.Option("--colour", help="Its colour in the archive, #rrggbb.")
    ] = None,
    icon: Annotated[
        str | None, typer.Option("--icon", help="A short icon before its name (an emoji).")
    ] = None,
) -> None:
    """How a badge looks beside names in the web archive."""
    new = run(ctx, lambda db, cfg: svc.style(db, badge, colour=colour, icon=icon, actor=cfg.actor))
    say(f"{badge.strip()!r}: colour {new[0] or '(default)'}, icon {new[1] or '(none)'}")

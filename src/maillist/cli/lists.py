"""`maillist lists ...`: create, list, show, set and delete lists."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from maillist.cli.lazy import lazy
from maillist.cli.output import JsonOption, emit_json, note, say, table
from maillist.cli.runtime import run
from maillist.errors import BadInput
from maillist.listoptions import OPTIONS
from maillist.models import ListSummary, Posting

if TYPE_CHECKING:
    from maillist.services import lists as svc
    from maillist.services import postfix
else:
    svc = lazy("maillist.services.lists")
    postfix = lazy("maillist.services.postfix")

app = typer.Typer(
    rich_markup_mode=None, help="Create, inspect, configure and delete lists.", no_args_is_help=True
)


def _as_dict(s: ListSummary) -> dict[str, Any]:
    data = asdict(s.list)
    data.pop("id")
    data["posting"] = s.list.posting.value
    data.update(members=s.members, moderators=s.moderators, owners=s.owners)
    return data


@app.command("create")
def create(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The list's posting address, LIST@DOMAIN.")],
    name: Annotated[
        str | None, typer.Option(help="Display name (default: the address's local part).")
    ] = None,
    description: Annotated[str, typer.Option(help="One-line description.")] = "",
    posting: Annotated[
        Posting, typer.Option(help="Who may post without moderation.", case_sensitive=False)
    ] = Posting.MEMBERS,
) -> None:
    """Create a list. Posts from non-members are held unless --posting open."""
    mlist = run(
        ctx,
        lambda db, cfg: svc.create(
            db, address, name=name, description=description, posting=posting, actor=cfg.actor
        ),
        create=True,
    )
    say(f"created list {mlist.address} ({mlist.name}), posting: {mlist.posting.value}")
    _refresh_postfix_maps(ctx)


@app.command("list")
def list_(ctx: typer.Context, json: JsonOption = False) -> None:
    """All lists with their member counts."""
    summaries = run(ctx, lambda db, cfg: svc.all_lists(db))
    if json:
        emit_json([_as_dict(s) for s in summaries])
        return
    if not summaries:
        note("no lists yet; create one with: maillist lists create LIST@DOMAIN")
        return
    table(
        ("address", "name", "posting", "members"),
        [(s.list.address, s.list.name, s.list.posting.value, s.members) for s in summaries],
    )


@app.command("show")
def show(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The list's address.")],
    json: JsonOption = False,
) -> None:
    """A list's settings and member counts."""
    summary = run(ctx, lambda db, cfg: svc.show(db, address))
    data = _as_dict(summary)
    if json:
        emit_json(data)
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        say(f"{key:<{width}}  {value}")


@app.command(
    "set",
    epilog="Options: " + "; ".join(f"{o.name}: {o.help}" for o in OPTIONS.values()),
)
def set_(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The list's address.")],
    option: Annotated[str, typer.Argument(help="Option name (see below).")],
    value: Annotated[str, typer.Argument(help="New value, checked for the option.")],
) -> None:
    """Change one list option; the value is validated for that option."""
    stored = run(ctx, lambda db, cfg: svc.set_option(db, address, option, value, actor=cfg.actor))
    say(f"{option.strip().lower().replace('-', '_')} = {stored}")


@app.command("delete")
def delete(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The list's address.")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: deletion cannot be undone.")] = False,
) -> None:
    """Delete a list with its subscriptions and messages. People and badges stay."""
    if not yes:
        raise BadInput(f"refusing to delete {address} without --yes (this cannot be undone)")
    gone = run(ctx, lambda db, cfg: svc.delete(db, address, actor=cfg.actor))
    say(f"deleted list {gone.list.address} ({gone.members} subscriptions removed)")
    _refresh_postfix_maps(ctx)


def _refresh_postfix_maps(ctx: typer.Context) -> None:
    """With MAILLIST_POSTFIX_MAPS=DIR, Postfix learns of a new or deleted list at once."""
    out = postfix.auto_dir()
    if out is not None:
        run(ctx, lambda db, cfg: postfix.write_maps(db, out))
        note(f"rewrote the Postfix maps in {out}")

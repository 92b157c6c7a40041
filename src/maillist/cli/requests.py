"""`maillist requests ...`: subscriptions waiting for a moderator (`subscription approve`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from maillist.cli.lazy import lazy
from maillist.cli.output import JsonOption, ListArg, emit_json, say, table
from maillist.cli.runtime import run

if TYPE_CHECKING:
    from maillist.services import subscriptions as svc
else:
    svc = lazy("maillist.services.subscriptions")

app = typer.Typer(
    rich_markup_mode=None,
    help="Subscription requests that confirmed and wait for a moderator; approve or deny them.",
    no_args_is_help=True,
)
IdArg = Annotated[int, typer.Argument(help="The request's id (from `requests list`).")]


@app.command("list")
def list_(
    ctx: typer.Context,
    list_address: ListArg,
    json: JsonOption = False,
) -> None:
    """Addresses that confirmed and wait for approval, oldest first."""
    pending = run(ctx, lambda db, cfg: svc.awaiting(db, list_address))
    if json:
        emit_json([asdict(p) for p in pending])
        return
    if not pending:
        say("no requests waiting")
        return
    table(("id", "address", "requested"), [(p.id, p.address, p.requested_at[:19]) for p in pending])


@app.command("approve")
def approve(ctx: typer.Context, request_id: IdArg) -> None:
    """Subscribe the address and send it the welcome notice."""
    address = run(ctx, lambda db, cfg: svc.decide(db, request_id, True, actor=cfg.actor))
    say(f"approved: {address} is now a member")


@app.command("deny")
def deny(ctx: typer.Context, request_id: IdArg) -> None:
    """Refuse the request (the address is not told)."""
    address = run(ctx, lambda db, cfg: svc.decide(db, request_id, False, actor=cfg.actor))
    say(f"denied: {address}")

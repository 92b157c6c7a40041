"""`maillist moderation ...`: held posts, and a moderator's decision on each."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from maillist.cli.lazy import lazy
from maillist.cli.output import JsonOption, ListArg, emit_json, note, say, table
from maillist.cli.runtime import run

if TYPE_CHECKING:
    from maillist.services import moderation as svc
else:
    svc = lazy("maillist.services.moderation")

app = typer.Typer(
    rich_markup_mode=None,
    help="List held posts; approve, reject or discard them.",
    no_args_is_help=True,
)
IdArg = Annotated[int, typer.Argument(help="The held message's id (from `moderation list`).")]


@app.command("list")
def list_(
    ctx: typer.Context,
    list_address: ListArg,
    json: JsonOption = False,
) -> None:
    """Posts waiting for a moderator, oldest first, with the reason each was held."""
    held = run(ctx, lambda db, cfg: svc.pending(db, list_address))
    if json:
        emit_json(
            [
                {k: v for k, v in asdict(h).items() if k not in {"list_address", "decision"}}
                for h in held
            ]
        )
        return
    if not held:
        note(f"nothing held for {list_address}")
        return
    table(
        ("id", "sender", "subject", "date", "reason"),
        [(h.id, h.sender or "?", h.subject[:50], h.date, h.reason) for h in held],
    )


@app.command("approve")
def approve(ctx: typer.Context, held_id: IdArg) -> None:
    """Post it: queued for redistribution exactly as if it had been accepted directly."""
    held = run(ctx, lambda db, cfg: svc.decide(db, held_id, "approved", actor=cfg.actor))
    say(f"approved {held_id} <{held.message_id}> on {held.list_address}")


@app.command("reject")
def reject(
    ctx: typer.Context,
    held_id: IdArg,
    reason: Annotated[str, typer.Option(help="Why, recorded with the decision.")] = "",
) -> None:
    """Refuse it. The reason is recorded (telling the sender comes with redistribution)."""
    held = run(
        ctx, lambda db, cfg: svc.decide(db, held_id, "rejected", actor=cfg.actor, reason=reason)
    )
    say(f"rejected {held_id} <{held.message_id}> on {held.list_address}")


@app.command("discard")
def discard(ctx: typer.Context, held_id: IdArg) -> None:
    """Drop it silently (spam): recorded, never posted, nobody told."""
    held = run(ctx, lambda db, cfg: svc.decide(db, held_id, "discarded", actor=cfg.actor))
    say(f"discarded {held_id} <{held.message_id}> on {held.list_address}")

"""`maillist audit`: the log of admin actions."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from maillist.cli.lazy import lazy
from maillist.cli.output import JsonOption, emit_json, table
from maillist.cli.runtime import run

if TYPE_CHECKING:
    from maillist.services import audit as svc
else:
    svc = lazy("maillist.services.audit")


def audit(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="How many entries, newest first.")] = 50,
    json: JsonOption = False,
) -> None:
    """Recent admin actions: who did what, to what, when."""
    entries = run(ctx, lambda db, cfg: svc.recent(db, limit))
    if json:
        emit_json([asdict(e) for e in entries])
        return
    table(
        ("at", "actor", "action", "target", "detail"),
        [(e.at, e.actor, e.action, e.target, e.detail) for e in entries],
    )

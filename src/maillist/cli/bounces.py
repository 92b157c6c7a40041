"""`maillist bounces LIST`: recent bounces, as bounce processing understood them."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from maillist.cli.lazy import lazy
from maillist.cli.output import JsonOption, ListArg, emit_json, say, table
from maillist.cli.runtime import run

if TYPE_CHECKING:
    from maillist.services import bouncelog as svc
else:
    svc = lazy("maillist.services.bouncelog")


def bounces(
    ctx: typer.Context,
    list_address: ListArg,
    json: JsonOption = False,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 100,
) -> None:
    """Recent bounces: the member matched, the addresses found, hard/soft/policy, the DSN's
    status and diagnostic, whether it was scored. Policy rejections (the author's DMARC, spam
    filters) are never scored against the member."""
    found = run(ctx, lambda db, cfg: svc.recent(db, list_address, limit))
    if json:
        emit_json([asdict(b) for b in found])
        return
    if not found:
        say("no bounces")
        return
    table(
        ("date", "member", "kind", "status", "scored", "diagnostic"),
        [(b.at[:19], b.member or "?", b.kind, b.status, "yes" if b.scored else "no",
          b.diagnostic[:60]) for b in found],
    )  # fmt: skip

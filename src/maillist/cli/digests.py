"""`maillist digests send [LIST]`: the digests waiting now, whatever the hour."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from maillist.cli.lazy import lazy
from maillist.cli.output import say
from maillist.cli.runtime import run

if TYPE_CHECKING:
    from maillist import templating
    from maillist.services import digests as svc
else:
    templating = lazy("maillist.templating")
    svc = lazy("maillist.services.digests")

app = typer.Typer(
    rich_markup_mode=None,
    help="Digests for members in digest mode (sent daily at the list's digest_hour).",
    no_args_is_help=True,
)


@app.command("send")
def send(
    ctx: typer.Context,
    list_address: Annotated[
        str | None, typer.Argument(help="Only this list (default: every list).")
    ] = None,
) -> None:
    """Queue every list's waiting digest now (a running `maillist serve` sends it)."""
    done = run(ctx, lambda db, cfg: svc.send_now(db, templating.Templates(), list_address))
    for line in done or ["no posts are waiting for a digest"]:
        say(line)

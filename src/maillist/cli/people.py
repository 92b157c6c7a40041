"""`maillist people ...`: what the archive shows of a person beside their posts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from maillist.cli.lazy import lazy
from maillist.cli.output import say
from maillist.cli.runtime import run
from maillist.errors import BadInput

if TYPE_CHECKING:
    from maillist.services import people as svc
else:
    svc = lazy("maillist.services.people")

app = typer.Typer(
    rich_markup_mode=None,
    help="People as the archive shows them: the picture beside their name.",
    no_args_is_help=True,
)


@app.command("set-picture")
def set_picture(
    ctx: typer.Context,
    address: Annotated[str, typer.Argument(help="The person's address.")],
    file: Annotated[Path, typer.Argument(help="A picture (PNG, JPEG, GIF, WebP).")],
) -> None:
    """Store a picture for ADDRESS (cropped square, 128 pixels); without one the archive draws
    the person's initials."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {file}: {exc.strerror}") from None
    size = run(ctx, lambda db, cfg: svc.set_picture(db, address, data, actor=cfg.actor))
    say(f"picture set for {address.strip()} ({size:,} bytes)")

"""`maillist dkim ...`: DKIM keys for the list domains, and the DNS records to publish."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from maillist.cli.lazy import lazy
from maillist.cli.output import say
from maillist.cli.runtime import run

if TYPE_CHECKING:
    from maillist.services import dkim as svc
else:
    svc = lazy("maillist.services.dkim")

app = typer.Typer(
    rich_markup_mode=None,
    help="DKIM keys: copies of a list whose domain has a key are signed (d= the list's domain).",
    no_args_is_help=True,
)
DomainArg = Annotated[str, typer.Argument(help="The list domain, e.g. lists.example.org.")]


@app.command("keygen")
def keygen(
    ctx: typer.Context,
    domain: DomainArg,
    selector: Annotated[str, typer.Option(help="The DKIM selector.")] = "maillist",
    ed25519: Annotated[
        bool,
        typer.Option(
            "--ed25519",
            help="Also make an Ed25519 key (RFC 8463, selector SELECTOR-ed): copies carry both "
            "signatures; receivers that know only RSA use that one.",
        ),
    ] = False,
) -> None:
    """Make an RSA-2048 key for DOMAIN (replacing any older ones) and print the TXT records to
    publish. Copies are signed from the next start of `maillist serve` (or within seconds)."""
    lines = run(
        ctx, lambda db, cfg: svc.keygen(db, domain, selector, actor=cfg.actor, ed25519=ed25519)
    )
    say("publish these records in DNS, then copies of lists at this domain are signed:")
    for line in lines:
        say(line)


@app.command("show")
def show(ctx: typer.Context, domain: DomainArg) -> None:
    """Print the TXT records of DOMAIN's keys again."""
    for line in run(ctx, lambda db, cfg: svc.show(db, domain)):
        say(line)

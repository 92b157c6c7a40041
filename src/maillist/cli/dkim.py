"""`maillist dkim ...`: DKIM keys for the list domains, and the DNS records to publish."""

from __future__ import annotations

from typing import Annotated

import typer

from maillist.cli.output import say
from maillist.cli.runtime import run
from maillist.services import dkim as svc

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
) -> None:
    """Make an RSA-2048 key for DOMAIN (replacing any older one) and print the TXT record to
    publish. Copies are signed from the next start of `maillist serve` (or within seconds)."""
    line = run(ctx, lambda db, cfg: svc.keygen(db, domain, selector, actor=cfg.actor))
    say("publish this record in DNS, then copies of lists at this domain are signed:")
    say(line)


@app.command("show")
def show(ctx: typer.Context, domain: DomainArg) -> None:
    """Print the TXT record of DOMAIN's key again."""
    say(run(ctx, lambda db, cfg: svc.show(db, domain)))

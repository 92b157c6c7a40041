"""`maillist status`, `maillist check` and `maillist postfix-maps`: for the people who run it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from maillist.cli.lazy import lazy
from maillist.cli.output import JsonOption, emit_json, note, say
from maillist.cli.runtime import run
from maillist.errors import MaillistError

if TYPE_CHECKING:
    from maillist.services import dkim as dkim_svc
    from maillist.services import postfix
    from maillist.services import status as svc
else:
    dkim_svc = lazy("maillist.services.dkim")
    postfix = lazy("maillist.services.postfix")
    svc = lazy("maillist.services.status")


class CheckFailed(MaillistError):
    pass


def status(
    ctx: typer.Context,
    json: JsonOption = False,
) -> None:
    """Version, lists, members, messages, queue depth by state, oldest pending delivery, last errors."""
    s = run(ctx, lambda db, cfg: svc.status(db))
    if json:
        emit_json(s.as_dict())
        return
    t = s.totals
    say(f"maillist {s.version}, schema {s.schema}, database {s.database}")
    say(
        f"lists {t['lists']}, people {t['people']}, subscriptions {t['subscriptions']}, "
        f"messages {t['messages']}, held {t['held']}, delivery failures {t['delivery_failures']}"
    )
    queue = ", ".join(f"{k} {v['batches']}/{v['recipients']}" for k, v in sorted(s.queue.items()))
    say(f"queue (batches/recipients): {queue or 'empty'}; jobs waiting {s.jobs_waiting}")
    say(f"oldest pending delivery: {s.oldest_pending or 'none'}")
    for error in s.last_errors:
        say(f"  {error['at'][:19]} {error['state']}: {error['error'][:100]}")


def check(
    ctx: typer.Context,
    templates: Annotated[
        Path | None, typer.Option(help="The --templates directory `serve` will use, if any.")
    ] = None,
) -> None:
    """Check the database (schema, secret) and the templates; exit 1 with the reason if unsound."""
    problems = run(ctx, lambda db, cfg: svc.check(db, templates))
    if problems:
        raise CheckFailed("; ".join(problems))
    for domain in run(ctx, lambda db, cfg: dkim_svc.unsigned_domains(db)):
        note(f"warning: no DKIM key for {domain}: its copies go out unsigned "
             f"(maillist dkim keygen {domain})")  # fmt: skip
    for warning in run(ctx, lambda db, cfg: svc.warnings(db)):
        note(f"warning: {warning}")
    say("ok: schema current, site secret present, templates render")


def postfix_maps(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Directory for the map files.")] = Path("var/postfix"),
    lmtp_host: Annotated[
        str, typer.Option(help="Where `maillist serve --lmtp` listens.")
    ] = "127.0.0.1",
    lmtp_port: Annotated[int, typer.Option(min=1, max=65535, help="Its port.")] = 8024,
) -> None:
    """Write Postfix's transport, recipient and domain maps for every list (postmap'd if Postfix is
    installed). Set MAILLIST_POSTFIX_MAPS=DIR to have `lists create/delete` rewrite them."""
    written = run(ctx, lambda db, cfg: postfix.write_maps(db, out, lmtp_host, lmtp_port))
    for path in written:
        say(f"wrote {path}")

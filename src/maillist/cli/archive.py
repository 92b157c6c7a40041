"""`maillist archive ...` (import, export, render) and `maillist search`: the list's history."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from maillist.cli.lazy import lazy
from maillist.cli.output import JsonOption, emit_json, note, say, table
from maillist.cli.runtime import run

if TYPE_CHECKING:
    from maillist.services import archive as svc
    from maillist.services import mboxio, static
    from maillist.sources import mbox
else:
    mboxio = lazy("maillist.services.mboxio")
    mbox = lazy("maillist.sources.mbox")
    static = lazy("maillist.services.static")
    svc = lazy("maillist.services.archive")

app = typer.Typer(
    rich_markup_mode=None,
    help="A list's history: import an mbox, export one, render the archive as static pages.",
    no_args_is_help=True,
)
ListArg = Annotated[str, typer.Argument(help="The list's address.")]


@app.command("import")
def import_(
    ctx: typer.Context,
    list_address: ListArg,
    file: Annotated[Path, typer.Argument(help="The mbox file (mboxo or mboxrd; gzipped too).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report the defects it would meet; write nothing.")
    ] = False,
) -> None:
    """Import an existing list's history: threaded exactly as live mail, duplicates skipped,
    never redistributed. Unusable messages are reported by position; the rest go on."""
    total = mbox.size(file) if file.is_file() else 0
    with typer.progressbar(length=total, label="reading", file=None) as bar:
        report = run(
            ctx,
            lambda db, cfg: mboxio.import_mbox(
                db, list_address, file, dry_run=dry_run, progress=bar.update
            ),
        )
    for problem in report.problems:
        note(problem)
    if dry_run:
        say(f"{report.read} message(s) read, {len(report.problems)} defect(s); nothing written")
    else:
        say(
            f"{report.imported} imported, {report.duplicates} duplicate(s) skipped, "
            f"{len(report.problems)} problem(s), of {report.read} read"
        )


@app.command("export")
def export(
    ctx: typer.Context,
    list_address: ListArg,
    file: Annotated[Path, typer.Argument(help="The mbox file to write (mboxrd).")],
) -> None:
    """Write every delivered post, oldest first, as an mboxrd file (mutt, Python's mailbox)."""
    written = run(ctx, lambda db, cfg: mboxio.export_mbox(db, list_address, file))
    say(f"{written} message(s) written to {file}")


@app.command("render")
def render(
    ctx: typer.Context,
    list_address: ListArg,
    out_dir: Annotated[Path, typer.Argument(help="Where the pages go (the web server's root).")],
) -> None:
    """Write the list's archive as static pages for any web server; a second run rewrites only
    the threads that changed. Public archives only: static files cannot ask who reads them."""
    done = run(ctx, lambda db, cfg: static.render(db, list_address, out_dir))
    say(f"{done.threads_written} thread(s) written, {done.threads_kept} unchanged, to {out_dir}")


def search(
    ctx: typer.Context,
    list_address: ListArg,
    query: Annotated[str, typer.Argument(help="Words to find (all of them, any order).")],
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Search a list's delivered posts (subject, text, author), best match first."""
    mlist, hits = run(
        ctx, lambda db, cfg: svc.Archive(db).search(list_address, query, svc.ADMIN, limit)
    )
    rows = [
        {
            "message_id": h.post.message_id,
            "subject": h.post.subject,
            "author": h.post.author.name if h.post.author else "",
            "date": h.post.date,
            "thread_url": h.thread_url,
            "snippet": "".join(text for text, _ in h.snippet),
        }
        for h in hits
    ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        note(f"nothing in {mlist.address} matches {query!r}")
        return
    table(
        ("date", "author", "subject", "message-id"),
        [(r["date"][:10], r["author"], r["subject"], f"<{r['message_id']}>") for r in rows],
    )

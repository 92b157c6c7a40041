"""`maillist db migrate --to URL` and `maillist db check --to URL`: moving a site to PostgreSQL
(or back to a SQLite file) and proving two databases hold the same rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from maillist.cli.lazy import lazy
from maillist.cli.output import note, say, table
from maillist.cli.runtime import config, run
from maillist.config import Config, database, describe
from maillist.errors import StoreError

if TYPE_CHECKING:
    from maillist.db.store import Store
    from maillist.services import transfer
else:
    transfer = lazy("maillist.services.transfer")

app = typer.Typer(
    rich_markup_mode=None,
    help="The database itself: copy it to PostgreSQL, compare two databases.",
    no_args_is_help=True,
)
ToOption = Annotated[
    str,
    typer.Option(
        "--to", metavar="<url|path>", help="The other database: a postgresql:// URL or a file."
    ),
]


@app.command("migrate")
def migrate(ctx: typer.Context, to: ToOption) -> None:
    """Copy this database (--db) into a new, empty one: messages, threads, queue state, members,
    badges, audit. One transaction, verified by counts and checksums before it commits; a target
    that already holds rows is refused. Stop `maillist serve` first."""
    target = database(to)
    from maillist.services.database import served_by

    pid = served_by(config(ctx).db)
    if pid:
        raise StoreError(
            f"maillist serve (pid {pid}) is using {describe(config(ctx).db)}: stop it first, or "
            "what it stores meanwhile is not copied"
        )

    async def go(db: Store, cfg: Config) -> list[transfer.TableCheck]:
        total = await transfer.total_rows(db)
        with typer.progressbar(length=total, label="copying", file=None) as bar:
            return await transfer.migrate_to(db, target, progress=bar.update)

    checks = run(ctx, go)
    rows = sum(c.source_rows for c in checks)
    note(
        f"copied {rows} rows in {len(checks)} tables to {describe(target)}; counts and checksums match"
    )
    note(f"point --db / MAILLIST_DB at {describe(target)} to use it")


@app.command("check")
def check(ctx: typer.Context, to: ToOption) -> None:
    """Compare this database (--db) with another, table by table (rows and checksums)."""
    checks = run(ctx, lambda db, cfg: transfer.compare_with(db, database(to)))
    rows = [
        [c.table, c.source_rows, c.target_rows, c.source_sum, c.target_sum, _verdict(c)]
        for c in checks
    ]
    table(["table", "rows here", "rows there", "checksum here", "checksum there", "verdict"], rows)
    different = [c.table for c in checks if not c.same]
    if different:
        say(f"error: the databases differ in {', '.join(different)}", err=True)
        raise typer.Exit(1)
    note(f"the same rows in all {len(checks)} tables")


def _verdict(check: transfer.TableCheck) -> str:
    return "same" if check.same else "DIFFERENT"

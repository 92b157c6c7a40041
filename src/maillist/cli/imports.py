"""`maillist import mlmmj|mailman2|mailman3 ...`: a list from another server's own data."""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from maillist.cli.lazy import lazy
from maillist.cli.output import note, say
from maillist.cli.runtime import config, run
from maillist.config import is_url
from maillist.errors import BadInput

if TYPE_CHECKING:
    from maillist.services import importer
    from maillist.sources import mailman2, mailman3, mlmmj
    from maillist.sources.plan import ListPlan
else:
    importer = lazy("maillist.services.importer")
    mailman2 = lazy("maillist.sources.mailman2")
    mailman3 = lazy("maillist.sources.mailman3")
    mlmmj = lazy("maillist.sources.mlmmj")

app = typer.Typer(
    rich_markup_mode=None,
    help="Come over from mlmmj, Mailman 2.1 or Mailman 3: a list with its settings, members "
    "and archive, in one transaction. Running it again changes nothing.",
    no_args_is_help=True,
)

PASSWORD_ENV = "MAILMAN_REST_PASSWORD"
PROGRESS_FROM = 5000  # people plus archived messages: smaller imports need no bar

Into = Annotated[
    str | None,
    typer.Option("--into", help="Fill this existing list instead of the source's own address."),
]
DryRun = Annotated[
    bool,
    typer.Option("--dry-run", help="Report what would be created and what cannot be carried "
                 "over; write nothing."),
]  # fmt: skip


@app.command("mlmmj")
def from_mlmmj(
    ctx: typer.Context,
    listdir: Annotated[
        Path, typer.Argument(help="The list's directory, e.g. /var/spool/mlmmj/team.")
    ],
    into: Into = None,
    dry_run: DryRun = False,
) -> None:
    """An mlmmj list directory: control/ settings, subscribers.d (regular), digesters.d
    (digest), nomailsubs.d (nomail), owner and moderators, and archive/N as the history."""
    _apply(ctx, mlmmj.read(listdir), into, dry_run)


@app.command("mailman2")
def from_mailman2(
    ctx: typer.Context,
    config_pck: Annotated[Path, typer.Argument(help="Mailman 2.1's lists/LIST/config.pck.")],
    archive: Annotated[
        Path | None,
        typer.Option("--archive", help="archives/private/LIST.mbox/LIST.mbox, the list's history."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Mailman's data directory, where held posts are kept (default: the one beside "
            "lists/, e.g. /var/lib/mailman/data).",
        ),
    ] = None,
    into: Into = None,
    dry_run: DryRun = False,
) -> None:
    """A Mailman 2.1 list from its config.pck (read as data: nothing in it is run), with the
    posts its request.pck holds for moderators."""
    _apply(ctx, mailman2.read(config_pck, archive, data), into, dry_run)


@app.command("mailman3")
def from_mailman3(
    ctx: typer.Context,
    list_id: Annotated[str, typer.Argument(help="The list: team@example.org or team.example.org.")],
    rest: Annotated[
        str, typer.Option("--rest", help="Mailman's REST API, e.g. http://localhost:8001.")
    ],
    user: Annotated[str, typer.Option("--user", help="REST admin user.")] = "restadmin",
    archive: Annotated[
        Path | None,
        typer.Option("--archive", help="An mbox of the list's history (HyperKitty's export)."),
    ] = None,
    into: Into = None,
    dry_run: DryRun = False,
) -> None:
    """A Mailman 3 list through its REST API, as Postorius reads it. The REST password is read
    from $MAILMAN_REST_PASSWORD, never from the command line."""
    password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        raise BadInput(f"set {PASSWORD_ENV} to the REST API's password (admin_pass in mailman.cfg)")
    source = mailman3.Rest(rest, user, password)
    _apply(ctx, mailman3.read(source, list_id, archive), into, dry_run)


def _apply(ctx: typer.Context, plan: ListPlan, into: str | None, dry_run: bool) -> None:
    work = len(plan.people) + plan.archive_size
    show_bar = len(plan.people) >= PROGRESS_FROM or plan.archive_size >= 1024 * 1024
    site = config(ctx).db
    with ExitStack() as stack:
        location = None
        if dry_run and not is_url(site) and not Path(site).exists():
            # a dry run writes nothing, not even a new site: it runs on a scratch one
            location = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "dry-run.db"
        bar = stack.enter_context(
            typer.progressbar(
                length=max(work, 1),
                label="importing",
                file=sys.stderr,
                hidden=not (show_bar and sys.stderr.isatty()),
            )
        )
        report = run(
            ctx,
            lambda db, cfg: importer.apply(
                db, plan, into=into, dry_run=dry_run, actor=cfg.actor, progress=bar.update
            ),
            create=True,
            location=location,
        )
    _show(report)


def _show(report: importer.Report) -> None:
    would = "would be " if report.dry_run else ""
    for problem in report.problems + report.posts.problems + report.held.problems:
        note(f"problem: {problem}")
    for left in report.left_behind:
        note(f"not carried over: {left}")
    verb = "created" if report.created else "filled (it exists)"
    say(f"{report.list_address}: {would}{verb} from {report.source}")
    for change in report.settings:
        say(f"  setting {change}")
    added = ", ".join(f"{n} {kind}" for kind, n in sorted(report.added.items())) or "none"
    say(f"  members {would}added: {added}; already on the list: {report.already}; "
        f"new to the site: {report.new_people}")  # fmt: skip
    if report.named:
        say(f"  names {would}taken from people's own archived posts: {report.named}")
    posts = report.posts
    if posts.read:
        say(f"  archive: {posts.imported} post(s) {would}imported, {posts.duplicates} already "
            f"there, of {posts.read} read")  # fmt: skip
    held = report.held
    if held.imported or held.duplicates:
        say(f"  held for moderation: {held.imported} post(s) {would}carried into the queue "
            f"(no notices sent), {held.duplicates} already there")  # fmt: skip
    problems = len(report.problems) + len(posts.problems) + len(held.problems)
    say(f"  {problems} problem(s), {len(report.left_behind)} setting(s) not carried over"
        + ("; nothing written (dry run)" if report.dry_run else ""))  # fmt: skip

"""The `maillist` admin command's commands. Commands call services; errors become one line on
stderr."""

from __future__ import annotations

import getpass
import os
import sys
from typing import Annotated

import typer

from maillist import __version__
from maillist.cli import (
    archive,
    audit,
    badges,
    bounces,
    database,
    demo,
    digests,
    dkim,
    imports,
    lists,
    members,
    moderation,
    ops,
    people,
    queue,
    requests,
    servecmd,
    threads,
)  # fmt: skip
from maillist.cli.output import say
from maillist.config import DEFAULT_DB, Config
from maillist.errors import MaillistError

app = typer.Typer(
    rich_markup_mode=None,
    name="maillist",
    help="maillist: an email discussion-list server. Manage lists, members, badges and the server.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(lists.app, name="lists")
app.add_typer(members.app, name="members")
app.add_typer(badges.app, name="badges")
app.add_typer(moderation.app, name="moderation")
app.add_typer(threads.messages_app, name="messages")
app.add_typer(queue.app, name="queue")
app.add_typer(requests.app, name="requests")
app.add_typer(dkim.app, name="dkim")
app.add_typer(archive.app, name="archive")
app.add_typer(people.app, name="people")
app.add_typer(digests.app, name="digests")
app.add_typer(database.app, name="db")
app.add_typer(imports.app, name="import")
app.command("search")(archive.search)
app.command("bounces")(bounces.bounces)
app.command("serve")(servecmd.serve_command)
app.command("threads")(threads.threads)
app.command("audit")(audit.audit)
app.command("status")(ops.status)
app.command("check")(ops.check)
app.command("postfix-maps")(ops.postfix_maps)
app.command("demo")(demo.demo)


def _version(value: bool) -> None:
    if value:
        say(f"maillist {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="MAILLIST_DB",
            metavar="<path|url>",
            help=f"SQLite database file (default {DEFAULT_DB}), or a postgresql:// URL; env "
            "MAILLIST_DB.",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    ctx.obj = Config.from_env(db=db, actor=_actor())


def _actor() -> str:
    """Who the audit log names for CLI actions: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def main() -> None:
    """Entry point: domain errors and anything unexpected become one line on stderr, never a traceback.

    Typer (in standalone mode) already answers usage errors with exit code 2."""
    try:
        app()
    except MaillistError as exc:
        say(f"error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:  # the last line of defence: a clear line, and the trace on request
        if os.environ.get("MAILLIST_DEBUG"):
            raise
        say(
            f"error: internal error: {type(exc).__name__}: {exc} (set MAILLIST_DEBUG=1 for details)",
            err=True,
        )
        sys.exit(70)

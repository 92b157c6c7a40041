"""`maillist members ...`: add, remove, list, import and export members."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from maillist.cli.lazy import lazy
from maillist.cli.output import JsonOption, ListArg, emit_json, note, say, table
from maillist.cli.runtime import run
from maillist.models import Mode, Role
from maillist.people import memberfile

if TYPE_CHECKING:
    from maillist.services import members as svc
else:
    svc = lazy("maillist.services.members")

app = typer.Typer(
    rich_markup_mode=None,
    help="Add, remove, list, import and export a list's members.",
    no_args_is_help=True,
)

PROGRESS_FROM = 5000  # rows; smaller files finish before a bar would be worth drawing


@app.command("add")
def add(
    ctx: typer.Context,
    list_address: ListArg,
    addresses: Annotated[list[str], typer.Argument(help="One or more member addresses.")],
    name: Annotated[str, typer.Option(help="Display name (for every address given).")] = "",
    role: Annotated[
        Role, typer.Option(case_sensitive=False, help="Role on this list.")
    ] = Role.MEMBER,
    mode: Annotated[Mode, typer.Option(case_sensitive=False, help="Delivery mode.")] = Mode.REGULAR,
    allow_confusable: Annotated[
        bool,
        typer.Option(
            "--allow-confusable",
            help="Add an address that mixes scripts or looks like an existing one (checked by you).",
        ),
    ] = False,
) -> None:
    """Subscribe addresses. If any address is invalid, already a member, or could pass for
    another person's (mixed scripts, a look-alike: Unicode TR 39), nothing is added."""
    added = run(
        ctx,
        lambda db, cfg: svc.add(
            db, list_address, addresses, name=name, role=role, mode=mode, actor=cfg.actor,
            allow_confusable=allow_confusable,
        ),
    )  # fmt: skip
    for address in added:
        say(f"added {address} to {list_address} as {role.value} ({mode.value})")


@app.command("remove")
def remove(
    ctx: typer.Context,
    list_address: ListArg,
    addresses: Annotated[list[str], typer.Argument(help="One or more member addresses.")],
) -> None:
    """Unsubscribe addresses. If any is not a member, nothing is removed."""
    removed = run(ctx, lambda db, cfg: svc.remove(db, list_address, addresses, actor=cfg.actor))
    for address in removed:
        say(f"removed {address} from {list_address}")


@app.command("set")
def set_(
    ctx: typer.Context,
    list_address: ListArg,
    address: Annotated[str, typer.Argument(help="The member's address.")],
    option: Annotated[str, typer.Argument(help="name, role, mode, status or receive_own.")],
    value: Annotated[
        str,
        typer.Argument(
            help="a display name, member|moderator|owner, regular|digest|nomail, "
            "enabled|disabled, yes|no."
        ),
    ],
) -> None:
    """Change one member's display name, role, delivery mode, status, or whether they get their
    own posts."""
    run(
        ctx,
        lambda db, cfg: svc.set_option(db, list_address, address, option, value, actor=cfg.actor),
    )
    say(f"{address}: {option} = {value}")


@app.command("list")
def list_(
    ctx: typer.Context,
    list_address: ListArg,
    json: JsonOption = False,
) -> None:
    """Members with role, delivery mode, status and badges."""
    rows = run(ctx, lambda db, cfg: svc.members(db, list_address))
    if json:
        emit_json(
            [
                {
                    "address": m.address,
                    "name": m.name,
                    "role": m.role.value,
                    "mode": m.mode.value,
                    "status": m.status.value,
                    "disabled_reason": m.disabled_reason,
                    "bounce_score": m.bounce_score,
                    "badges": list(m.badges),
                }
                for m in rows
            ]
        )
        return
    if not rows:
        note(f"{list_address} has no members yet")
        return
    table(
        ("address", "name", "role", "mode", "status", "badges"),
        [
            (m.address, m.name, m.role.value, m.mode.value, m.status.value, ", ".join(m.badges))
            for m in rows
        ],
    )


@app.command("import")
def import_(
    ctx: typer.Context,
    list_address: ListArg,
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with a header row: address, and optionally name, role, mode; - for stdin."
        ),
    ],
    strict: Annotated[
        bool, typer.Option("--strict", help="Add nothing if any row is invalid.")
    ] = False,
) -> None:
    """Bulk-subscribe from CSV. Valid new rows are added; bad rows are reported by line number."""
    rows, warnings = memberfile.read_rows(file)
    for warning in warnings:
        note(f"warning: {warning}")
    show_bar = len(rows) >= PROGRESS_FROM and sys.stderr.isatty()
    with typer.progressbar(
        length=2 * len(rows), label="importing", file=sys.stderr, hidden=not show_bar
    ) as bar:
        report = run(
            ctx,
            lambda db, cfg: svc.import_rows(
                db, list_address, rows, strict=strict, actor=cfg.actor, progress=bar.update
            ),
        )
    for problem in report.invalid:
        note(f"line {problem.line}: {problem.reason}")
    say(f"added {report.added}, already members {report.already}, invalid {len(report.invalid)}")
    if not report.applied:
        note(f"--strict: nothing imported because {len(report.invalid)} row(s) are invalid")
        raise typer.Exit(1)


@app.command("export")
def export(ctx: typer.Context, list_address: ListArg) -> None:
    """Print the members as CSV, in the format `members import` reads back."""
    rows = run(ctx, lambda db, cfg: svc.members(db, list_address))
    memberfile.write_members(sys.stdout, rows)

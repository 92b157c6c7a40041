"""`maillist queue`: what is waiting to be delivered, and `queue retry`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from maillist.cli.output import emit_json, say, table
from maillist.cli.runtime import run
from maillist.services import queue as svc

app = typer.Typer(
    rich_markup_mode=None,
    help="The outbound queue: pending, deferred (with the last error) and failed deliveries.",
    invoke_without_command=True,
)


@app.callback()
def queue(
    ctx: typer.Context,
    json: Annotated[
        bool, typer.Option("--json", help="Print JSON on stdout and nothing else.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="How many batches to list.")] = 100,
) -> None:
    """Show the queue: counts by state, then each open batch (one SMTP transaction each)."""
    if ctx.invoked_subcommand is not None:
        return
    v = run(ctx, lambda db, cfg: svc.view(db, limit))
    if json:
        emit_json(
            {
                "jobs_waiting": v.jobs_waiting,
                "states": {k: {"batches": b, "recipients": r} for k, (b, r) in v.counts.items()},
                "batches": [asdict(row) for row in v.rows],
            }
        )
        return
    summary = ", ".join(
        f"{state}: {b} batches / {r} recipients" for state, (b, r) in sorted(v.counts.items())
    )
    say(f"jobs waiting to expand: {v.jobs_waiting}; {summary or 'queue empty'}")
    if v.rows:
        table(
            ("batch", "list", "message", "state", "rcpts", "tries", "next attempt", "last error"),
            [(r.batch_id, r.list_address, r.message_id[:40], r.state, r.recipients, r.attempts,
              r.next_attempt_at[:19], r.last_error[:60]) for r in v.rows],
        )  # fmt: skip


@app.command("retry")
def retry(ctx: typer.Context) -> None:
    """Make every deferred delivery due now (the server picks them up within a second)."""
    count = run(ctx, lambda db, cfg: svc.retry(db))
    say(f"{count} deferred batch(es) due now")

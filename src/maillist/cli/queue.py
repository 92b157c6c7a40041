"""`maillist queue`: what is waiting to be delivered, and `queue retry`."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from maillist.cli.lazy import lazy
from maillist.cli.output import JsonOption, emit_json, say, table
from maillist.cli.runtime import run

if TYPE_CHECKING:
    from maillist.services import queue as svc
else:
    svc = lazy("maillist.services.queue")

app = typer.Typer(
    rich_markup_mode=None,
    help="The outbound queue: pending, sending, deferred (with the last error) and failed "
    "deliveries; batches stuck in sending; posts that could not be expanded.",
    invoke_without_command=True,
)


@app.callback()
def queue(
    ctx: typer.Context,
    json: JsonOption = False,
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
                "batches": [asdict(row) | {"stuck": row.batch_id in v.stuck} for row in v.rows],
                "failed_jobs": [asdict(job) for job in v.failed_jobs],
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
            [(r.batch_id, r.list_address, r.message_id[:40],
              f"{r.state} (stuck)" if r.batch_id in v.stuck else r.state, r.recipients,
              r.attempts, "lease over" if r.batch_id in v.stuck else r.next_attempt_at[:19],
              r.last_error[:60]) for r in v.rows],
        )  # fmt: skip
    for job in v.failed_jobs:
        say(
            f"failed to expand: job {job.job_id} <{job.message_id}> on {job.list_address}: {job.error}"
        )


@app.command("retry")
def retry(ctx: typer.Context) -> None:
    """Make every deferred delivery due now, and every batch stuck in sending past its lease
    (the server picks them up within a second)."""
    deferred, stuck = run(ctx, lambda db, cfg: svc.retry(db))
    say(f"{deferred} deferred and {stuck} stuck batch(es) due now")

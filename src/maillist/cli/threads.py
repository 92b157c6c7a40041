"""`maillist threads` and `maillist messages show`: what the lists have received."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from maillist.cli.lazy import lazy
from maillist.cli.output import JsonOption, ListArg, emit_json, say, when
from maillist.cli.runtime import run
from maillist.threads import Node

if TYPE_CHECKING:
    from maillist.services import messages as svc
else:
    svc = lazy("maillist.services.messages")

messages_app = typer.Typer(
    rich_markup_mode=None, help="Look at stored messages.", no_args_is_help=True
)


def _node(node: Node) -> dict[str, Any]:
    if node.placeholder:
        return {
            "message_id": node.message_id,
            "placeholder": True,
            "replies": [_node(r) for r in node.replies],
        }
    return {
        "message_id": node.message_id,
        "subject": node.subject,
        "author": {"name": node.sender_name, "address": node.sender},
        "date": node.date,
        "badges": list(node.badges),
        "replies": [_node(r) for r in node.replies],
    }


def threads(
    ctx: typer.Context,
    list_address: ListArg,
    limit: Annotated[
        int, typer.Option(min=1, help="How many threads, newest activity first.")
    ] = 50,
    json: JsonOption = False,
) -> None:
    """Threads newest activity first, replies nested in date order, authors with their badges."""
    views = run(ctx, lambda db, cfg: svc.thread_views(db, list_address, limit))
    if json:
        emit_json(
            [
                {
                    "thread_id": v.thread.id,
                    "subject": v.thread.subject,
                    "last_activity": v.thread.last_activity_at,
                    "messages": v.messages,
                    "roots": [_node(n) for n in v.roots],
                }
                for v in views
            ]
        )
        return
    if not views:
        say(f"{list_address} has no threads yet", err=True)
        return
    for view in views:
        count = f"{view.messages} message{'' if view.messages == 1 else 's'}"
        say(
            f"# {view.thread.subject or '(no subject)'}  ({count}, last "
            f"{when(view.thread.last_activity_at)})"
        )
        stack = [(n, 0) for n in reversed(view.roots)]
        while stack:
            node, depth = stack.pop()
            pad = "  " * depth
            if node.placeholder:
                say(f"{pad}- <{node.message_id}> (not received)")
            else:
                who = f"{node.sender_name} <{node.sender}>" if node.sender_name else node.sender
                badges = f" - {', '.join(node.badges)}" if node.badges else ""
                say(f"{pad}- {node.subject}  {who}{badges}  {when(node.date)}")
            stack.extend((r, depth + 1) for r in reversed(node.replies))


@messages_app.command("show")
def show(
    ctx: typer.Context,
    message_id: Annotated[str, typer.Argument(help="The Message-ID, with or without <>.")],
    raw: Annotated[
        bool, typer.Option("--raw", help="Print the bytes exactly as received.")
    ] = False,
) -> None:
    """A stored message: where it came from, what was decided and why (or its raw bytes)."""
    found = run(ctx, lambda db, cfg: svc.show(db, message_id))
    if raw:
        for _, message in found:
            if message.raw is not None:
                sys.stdout.buffer.write(message.raw)
        sys.stdout.flush()
        return
    for index, (address, m) in enumerate(found):
        if index:
            say("")
        fields = {
            "message-id": f"<{m.message_id}>",
            "list": address,
            "kind": m.kind,
            "verdict": m.verdict or "(placeholder: referenced, not received)",
            "reasons": m.reasons,
            "from": f"{m.sender_name} <{m.sender}>" if m.sender_name else m.sender,
            "envelope-from": m.envelope_from,
            "recipient": m.recipient,
            "subject": m.subject,
            "date": when(m.date),
            "received": when(m.received_at),
            "in-reply-to": m.in_reply_to,
            "references": m.refs,
            "size": str(m.size),
            "authenticated": m.auth,
            "badges": "" if m.verified or m.placeholder else "withheld (the From is not proven)",
            "thread": str(m.thread_id or ""),
        }
        width = max(len(k) for k in fields)
        for key, value in fields.items():
            if value:
                say(f"{key:<{width}}  {value}")

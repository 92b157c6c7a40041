"""What maillist reads in a message to a list's sub-addresses: the lines a person typed (a
command to -request, a moderator's answer to -confirm) and what a bounce says. Pure.

Both mean parsing MIME and matching regexes over a stranger's bytes, so `read` runs in the
intake sandbox under the parse budget (services/sandbox.py), never on the event loop and never
inside the store's transaction; what could not be read in time is `problem`, and is handled as
a message that says nothing (a bounce not scored, a command not understood)."""

from __future__ import annotations

from dataclasses import dataclass

from maillist.mail import bouncereport, replytext

TYPED_LINES = 50


@dataclass(frozen=True, slots=True)
class Reading:
    typed: tuple[str, ...] = ()  # what a person typed, first lines first (replytext.body_lines)
    bounce: bouncereport.Report | None = None  # for mail to -bounces
    problem: str = ""  # why the message could not be read ('' when it was)


def read(raw: bytes, *, typed: bool, bounce: bool) -> Reading:
    return Reading(
        tuple(replytext.body_lines(raw, TYPED_LINES)) if typed else (),
        bouncereport.read(raw) if bounce else None,
    )


def unreadable(problem: str, *, bounce: bool) -> Reading:
    return Reading((), bouncereport.unreadable(problem) if bounce else None, problem)

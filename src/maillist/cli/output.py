"""Printing: JSON (and nothing else) on stdout for --json, aligned text tables otherwise."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

# What many commands take, said once.
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout and nothing else.")]
ListArg = Annotated[str, typer.Argument(help="The list's address.")]

# What a terminal would act on instead of showing: C0 controls (ESC, BEL, NUL, CR ...), DEL, C1
# controls (U+009B is a one-character CSI) and the bidi overrides that reorder what is shown.
# Message-IDs, subjects and names come from senders: they are shown escaped, never obeyed.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control or bidi character shown as an escape (\\x1b, \\u202e)."""
    return _UNPRINTABLE.sub(_escape, text)


def say(text: str, err: bool = False) -> None:
    typer.echo(printable(text), err=err)


def emit_json(value: Any) -> None:
    """JSON on stdout. json.dumps escapes C0 controls itself; DEL, C1 and bidi controls are
    escaped too (still valid JSON: they can only occur inside strings)."""
    text = json.dumps(value, ensure_ascii=False, indent=None)
    sys.stdout.write(_UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text))
    sys.stdout.write("\n")


# The store's timestamps (2026-12-03T09:33:24.123456Z): in a table, to the second and marked UTC.
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?Z$")


def when(value: str) -> str:
    """A stored timestamp as an admin reads it: `2026-12-03 09:33:24 UTC`."""
    found = _STAMP.match(value)
    return f"{found.group(1)} {found.group(2)} UTC" if found else value


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain aligned table; fast enough for 100,000 rows, unlike a rich table. Timestamps
    are shown to the second, in UTC (JSON keeps them whole)."""
    text = [[when(c) if c[:1].isdigit() and c.endswith("Z") else c for c in map(str, row)]
            for row in rows]  # fmt: skip
    if _UNPRINTABLE.search("".join("".join(row) for row in text)):  # one scan in the usual case
        text = [[printable(c) for c in row] for row in text]
    widths = [len(h) for h in headers]
    for row in text:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*headers).rstrip(), "  ".join("-" * w for w in widths)]
    out.extend(fmt.format(*row).rstrip() for row in text)
    sys.stdout.write("\n".join(out) + "\n")


def note(message: str) -> None:
    """Human-facing progress and confirmations go to stderr when stdout carries data."""
    say(message, err=True)

"""Printing: JSON (and nothing else) on stdout for --json, aligned text tables otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import typer


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=None))
    sys.stdout.write("\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain aligned table; fast enough for 100,000 rows, unlike a rich table."""
    text = [[str(c) for c in row] for row in rows]
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
    typer.echo(message, err=True)

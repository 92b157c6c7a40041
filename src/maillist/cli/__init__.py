"""The `maillist` admin command (the commands themselves: cli/commands.py).

`maillist --version` is answered before anything else is loaded: scripts ask it often."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from maillist import __version__

if TYPE_CHECKING:
    import typer

    app: typer.Typer


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        print(f"maillist {__version__}")
        return
    from maillist.cli.commands import main as run

    run()


def __getattr__(name: str) -> Any:
    """`maillist.cli.commands.app` (the Typer app), loaded when asked for."""
    if name == "app":
        from maillist.cli.commands import app

        return app
    raise AttributeError(name)

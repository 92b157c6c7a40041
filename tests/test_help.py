"""Every command and group answers --help with a description."""

from __future__ import annotations

from typing import Any

import pytest
import typer.main

from conftest import CliFn
from maillist.cli import app


def command_paths() -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return paths


PATHS = command_paths()


def test_the_issue_commands_exist() -> None:
    expected = {
        ("lists", "create"), ("lists", "list"), ("lists", "show"), ("lists", "set"),
        ("lists", "delete"), ("members", "add"), ("members", "remove"), ("members", "list"),
        ("members", "import"), ("members", "export"), ("badges", "grant"), ("badges", "revoke"),
        ("badges", "list"),
    }  # fmt: skip
    assert expected <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "maillist")
def test_help(run_cli: CliFn, path: tuple[str, ...]) -> None:
    result = run_cli(*path, "--help")
    assert result.code == 0, result.err
    assert "Usage:" in result.out
    body = result.out.split("Usage:", 1)[1]
    assert len(body.split()) > 8  # more than a bare usage line: a description is there

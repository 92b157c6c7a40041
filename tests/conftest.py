"""Shared fixtures: a temporary database, the real `maillist` command, and an in-process runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import dbutil
from maillist.cli import main
from maillist.db import Store, open_store
from pgserver import PgCluster, unavailable_reason

CLI_TIMEOUT = 120


@dataclass
class Result:
    code: int
    out: str
    err: str


CliFn = Callable[..., Result]


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgCluster]:
    """One throwaway PostgreSQL cluster for the session (tests/pgserver.py), started by the
    first test that needs it; those tests are skipped, with the reason, where it cannot run."""
    reason = unavailable_reason()
    if reason is not None:
        if dbutil.POSTGRES:
            pytest.exit(f"MAILLIST_TEST_BACKEND=postgresql, but {reason}", returncode=3)
        pytest.skip(reason)
    cluster = PgCluster.start(tmp_path_factory.mktemp("postgresql"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session", autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """SQLite files, or (MAILLIST_TEST_BACKEND=postgresql) a database of the session's cluster
    for each database a test names (tests/dbutil.py)."""
    if not dbutil.POSTGRES:
        yield "sqlite"
        return
    dbutil.DATABASES.cluster = request.getfixturevalue("pg_cluster")
    try:
        yield "postgresql"
    finally:
        dbutil.DATABASES.cluster = None


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "maillist.db"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILLIST_")}
    env.update(extra)
    return env


@pytest.fixture
def cli(db_path: Path) -> CliFn:
    """Run the real `maillist` command as a subprocess on the temporary database."""

    def run(*args: str, stdin: str | None = None, db: Path | None = db_path) -> Result:
        prefix = ["--db", dbutil.location(db)] if db is not None else []
        proc = subprocess.run(
            [sys.executable, "-m", "maillist", *prefix, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            env=clean_env(),
            cwd=db_path.parent,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def run_cli(
    db_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> CliFn:
    """Run `maillist.cli.main` in this process (fast), as the console script would."""
    monkeypatch.delenv("MAILLIST_DB", raising=False)
    monkeypatch.delenv("MAILLIST_DEBUG", raising=False)

    def run(*args: str) -> Result:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["maillist", "--db", dbutil.location(db_path), *args])
        code: int = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[Store]:
    database = await open_store(dbutil.location(db_path))
    try:
        yield database
    finally:
        await database.close()


dump = dbutil.dump


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.code != 0, result
    assert "Traceback" not in result.err, result.err
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])

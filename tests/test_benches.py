"""Every benchmark under bench/ still runs, on tiny sizes, and prints its figures.

The figures quoted in closing notes come from these scripts; a script that no longer runs against
the code (bench/hostile.py broke when the start-up line gained the archive's URL, and nothing
noticed) turns every figure it printed into one nobody can reproduce. Run once per suite, in the
SQLite suite only (the benches make their own databases; scale.py its own PostgreSQL cluster).
What each bench needs from Debian (.ci/run installs it) is skipped with its name where absent,
so a bench never runs apt-get from a test."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dbutil
from pgserver import unavailable_reason

BENCH = Path(__file__).resolve().parent.parent / "bench"
POSTFIX = ("smtp-sink", "smtp-source")

# bench (its script's name first): (tiny arguments, a line its figures must print, what it needs besides Python)
CASES: dict[str, tuple[list[str], str, tuple[str, ...]]] = {
    "cli": (["--runs", "1"], r"maillist --version\s+min [\d.]+ s", ()),
    "members": (["--members", "300", "--runs", "1"], r"members import\s+[\d.]+ s", ()),
    "imports": (["--members", "200", "--posts", "10", "--runs", "1"], r"mlmmj\s+[\d.]+ s", ()),
    "archive": (
        ["--posts", "1500", "--messages", "300", "--runs", "1"],
        r"first view .* median \d+ ms",
        (),
    ),
    "hostile": (
        ["--runs", "1"],
        r"archive\s+another client's longest wait\s+\d+ ms",
        (),
    ),
    "ingest": (["--messages", "100", "--runs", "1"], r"median of 1: maillist [\d,]+ posts/s", POSTFIX),
    "fanout": (
        ["--members", "100", "--posts", "1", "--runs", "1", "--personal"],
        r"recipients/s",
        POSTFIX,
    ),
    "latency": (
        ["--members", "300", "--posts", "10", "--runs", "1", "--warmup", "2"],
        r"goal: fan-out p99",
        POSTFIX,
    ),
    "latency --postgresql": (
        ["--members", "300", "--posts", "10", "--runs", "1", "--warmup", "2", "--postgresql"],
        r"goal: fan-out p99",
        (*POSTFIX, "postgresql"),
    ),
    "mlmmj": (["--members", "100", "--runs", "1"], r"maillist .* recipients/s", POSTFIX),
    "scale": (
        ["--posts", "60", "--members", "100", "--fanout-posts", "1", "--runs", "1",
         "--processes", "1"],
        r"postgresql x1\s+ingest\s+[\d,]+ posts/s",
        (*POSTFIX, "postgresql"),
    ),
}  # fmt: skip


def missing(needs: tuple[str, ...], bench: str) -> str | None:
    for tool in needs:
        if tool == "postgresql":
            reason = unavailable_reason()
            if reason:
                return reason
        elif not shutil.which(tool):
            return f"needs {tool} (Debian's postfix)"
    if bench == "mlmmj" and not Path("/usr/bin/mlmmj-receive").exists():
        return "needs Debian's mlmmj"
    return None


@pytest.mark.skipif(dbutil.POSTGRES, reason="benches make their own databases: SQLite suite only")
@pytest.mark.parametrize("bench", sorted(CASES))
def test_the_bench_runs_and_prints_its_figures(bench: str) -> None:
    args, figure, needs = CASES[bench]
    reason = missing(needs, bench)
    if reason:
        pytest.skip(reason)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        [sys.executable, str(BENCH / f"{bench.split()[0]}.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=BENCH.parent,
    )
    shown = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, shown
    assert re.search(figure, done.stdout), shown

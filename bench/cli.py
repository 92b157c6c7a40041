"""How long an admin waits for the `maillist` command: whole processes, as a shell runs them.

    python bench/cli.py [--runs 9] [--maillist PATH]

Times `maillist --version`, `maillist --help`, `maillist lists list` and `maillist members list`
on a small site (a list with 50 members, made first with the same command) and `python -c pass`
as the floor of any Python command, each --runs times; prints min, median and max, and the goal
line (--version and --help under 0.3 s, a simple read under 0.5 s, medians)."""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(command: list[str], runs: int) -> list[float]:
    took = []
    for _ in range(runs):
        begun = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, timeout=60)
        took.append(time.perf_counter() - begun)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--maillist", default=shutil.which("maillist") or "", help="the installed command"
    )
    args = parser.parse_args()
    command = [args.maillist] if args.maillist else [sys.executable, "-m", "maillist"]
    with tempfile.TemporaryDirectory() as where:
        db = str(Path(where) / "m.db")
        subprocess.run(
            [*command, "--db", db, "lists", "create", "team@example.org"],
            check=True,
            capture_output=True,
        )
        members = [f"m{n}@example.org" for n in range(50)]
        subprocess.run(
            [*command, "--db", db, "members", "add", "team@example.org", *members],
            check=True,
            capture_output=True,
        )
        cases = {
            "python -c pass (floor)": [sys.executable, "-c", "pass"],
            "maillist --version": [*command, "--version"],
            "maillist --help": [*command, "--help"],
            "maillist lists list": [*command, "--db", db, "lists", "list"],
            "maillist members list": [*command, "--db", db, "members", "list", "team@example.org"],
        }
        medians = {}
        for name, argv in cases.items():
            took = timed(argv, args.runs)
            medians[name] = statistics.median(took)
            print(
                f"{name:28} min {min(took):.3f} s  median {medians[name]:.3f} s  "
                f"max {max(took):.3f} s",
                flush=True,
            )
    met = (
        medians["maillist --version"] < 0.3
        and medians["maillist --help"] < 0.3
        and medians["maillist lists list"] < 0.5
    )
    print(f"goal (--version, --help < 0.3 s; a simple read < 0.5 s): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()

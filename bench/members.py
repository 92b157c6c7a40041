"""Benchmark `maillist members import` and `members list --json` at scale, as real subprocesses.

Prints, per run and as medians: wall seconds, peak RSS of the maillist process, and a baseline from
the same run (plain sqlite3 executemany into the same schema, and a plain SELECT + json.dumps), so the
ratio shows what the CLI, validation and service layer cost on top of the floor.

    python bench/members.py --members 100000 --runs 5
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TARGET_IMPORT_S = 5.0
TARGET_LIST_S = 2.0
TARGET_RSS_MB = 200.0


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants (the import's worker pool counts)."""
    total = 0
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                total += sum(tree_rss_kb(int(child)) for child in children.read().split())
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return total


def timed(cmd: list[str]) -> tuple[float, float, bytes]:
    """Wall seconds and peak RSS (MB) of one command, its child processes included.

    The peak is the larger of wait4's ru_maxrss for the process and a 5 ms sample of the whole tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], tree_rss_kb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out_chunks = []
    assert proc.stdout is not None
    for chunk in iter(lambda: proc.stdout.read(1 << 16), b""):  # type: ignore[union-attr]
        out_chunks.append(chunk)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stop.set()
    sampler.join(timeout=5)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read() if proc.stderr else b""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode()[-500:]}")
    return wall, max(usage.ru_maxrss, peak[0]) / 1024, b"".join(out_chunks)


def write_csv(path: Path, n: int) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["address", "name", "role"])
        for i in range(n):
            writer.writerow([f"member{i}@example{i % 97}.org", f"Member Number {i}", "member"])


def baseline_import(db: Path, csv_path: Path) -> float:
    """The floor: read the CSV and executemany into the same tables, no validation, no CLI."""
    start = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA cache_size=-65536")  # the same page cache maillist uses
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO people (address, name, created_at) VALUES (?, ?, 'now')",
        ((r["address"], r["name"]) for r in rows),
    )
    list_id = conn.execute("SELECT id FROM lists").fetchone()[0]
    conn.executemany(
        "INSERT INTO subscriptions (list_id, person_id, created_at) "
        "SELECT ?, id, 'now' FROM people WHERE address = ?",
        ((list_id, r["address"]) for r in rows),
    )
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - start


def baseline_list(db: Path) -> float:
    start = time.perf_counter()
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT p.address, p.name, s.role, s.mode, s.status FROM subscriptions s "
        "JOIN people p ON p.id = s.person_id ORDER BY p.address"
    ).fetchall()
    json.dumps(
        [dict(zip(("address", "name", "role", "mode", "status"), r, strict=True)) for r in rows]
    )
    conn.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cli = [sys.executable, "-m", "maillist"]
    results: dict[str, list[float]] = {
        k: [] for k in ("imp", "imp_rss", "imp_base", "lst", "lst_rss", "lst_base")
    }
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "members.csv"
        write_csv(csv_path, args.members)
        for run in range(1, args.runs + 1):
            db = Path(tmp) / f"run{run}.db"
            base_db = Path(tmp) / f"base{run}.db"
            for target in (db, base_db):
                subprocess.run(
                    [*cli, "--db", str(target), "lists", "create", "bench@example.org"],
                    check=True,
                    capture_output=True,
                )
            imp, imp_rss, out = timed(
                [*cli, "--db", str(db), "members", "import", "bench@example.org", str(csv_path)]
            )
            assert out.startswith(f"added {args.members},".encode()), out[:200]
            imp_base = baseline_import(base_db, csv_path)
            lst, lst_rss, out = timed(
                [*cli, "--db", str(db), "members", "list", "bench@example.org", "--json"]
            )
            assert len(json.loads(out)) == args.members
            lst_base = baseline_list(base_db)
            for key, value in zip(
                results, (imp, imp_rss, imp_base, lst, lst_rss, lst_base), strict=True
            ):
                results[key].append(value)
            print(
                f"run {run}: import {imp:.2f}s ({imp_rss:.0f} MB) baseline {imp_base:.2f}s | "
                f"list --json {lst:.2f}s ({lst_rss:.0f} MB) baseline {lst_base:.2f}s",
                flush=True,
            )
    med = {k: statistics.median(v) for k, v in results.items()}
    n = args.members
    print(f"\nmedian of {args.runs} runs, {n:,} members")
    print(
        f"members import      {med['imp']:.2f} s  ({n / med['imp']:,.0f} rows/s)  peak RSS {med['imp_rss']:.0f} MB"
        f"  | baseline {med['imp_base']:.2f} s, ratio {med['imp'] / med['imp_base']:.1f}x"
        f"  | target < {TARGET_IMPORT_S} s, < {TARGET_RSS_MB:.0f} MB"
    )
    print(
        f"members list --json {med['lst']:.2f} s  peak RSS {med['lst_rss']:.0f} MB"
        f"  | baseline {med['lst_base']:.2f} s, ratio {med['lst'] / med['lst_base']:.1f}x"
        f"  | target < {TARGET_LIST_S} s, < {TARGET_RSS_MB:.0f} MB"
    )


if __name__ == "__main__":
    main()

"""Benchmark `maillist import mlmmj|mailman2` at scale beside `members import` of the same people
from CSV, each a real `maillist` subprocess into a fresh SQLite file, in the same run.

The mlmmj list is made by Debian's mlmmj-make-ml (when installed) and filled as mlmmj-sub fills
it (one address a line in subscribers.d/<first letter>, digesters.d, nomailsubs.d) plus an
archive of --posts messages; the Mailman 2.1 config.pck is written as Python 2's cPickle writes
it (tests/py2pickle.py), with the same people. Prints each run, the medians and the ratio to the
CSV import.

    python bench/imports.py --members 10000 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from mailman3env import PASSWORD, Mailman, missing  # noqa: E402
from py2pickle import Py2Str, dumps  # noqa: E402

MLMMJ_MAKE = Path("/usr/bin/mlmmj-make-ml")


def people(count: int) -> list[tuple[str, str, str]]:
    """(address, name, mode): one in ten a digest reader, one in twenty nomail."""
    out = []
    for i in range(count):
        mode = "digest" if i % 10 == 3 else "nomail" if i % 20 == 7 else "regular"
        out.append((f"member{i:06d}@example{i % 97}.org", f"Member {i}", mode))
    return out


def csv_file(path: Path, rows: list[tuple[str, str, str]]) -> None:
    path.write_text("address,name,mode\n" + "".join(f"{a},{n},{m}\n" for a, n, m in rows))


def mlmmj_dir(spool: Path, rows: list[tuple[str, str, str]], posts: int) -> Path:
    spool.mkdir()
    if MLMMJ_MAKE.exists():
        subprocess.run([str(MLMMJ_MAKE), "-s", str(spool), "-L", "team"], check=True,
                       input="example.org\nowner@example.org\nen\nn\n", text=True,
                       capture_output=True, timeout=60)  # fmt: skip
    else:
        (spool / "team" / "control").mkdir(parents=True)
        (spool / "team" / "control" / "listaddress").write_text("team@example.org\n")
    listdir = spool / "team"
    folders = {"regular": "subscribers.d", "digest": "digesters.d", "nomail": "nomailsubs.d"}
    files: dict[Path, list[str]] = {}
    for address, _, mode in rows:
        files.setdefault(listdir / folders[mode] / address[0], []).append(address)
    for path, lines in files.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(f"{line}\n" for line in lines))
    archive = listdir / "archive"
    archive.mkdir(exist_ok=True)
    for n in range(1, posts + 1):
        parent = f"In-Reply-To: <p{n - 1}@example.org>\n" if n % 5 else ""
        (archive / str(n)).write_text(
            f"From: Member {n} <member{n:06d}@example{n % 97}.org>\nTo: team@example.org\n"
            f"Subject: post {n}\nMessage-ID: <p{n}@example.org>\n{parent}"
            f"Date: Tue, 02 Jan 2024 10:{n % 60:02d}:00 +0000\n\n" + "Some text.\n" * 20
        )
    return listdir


def config_pck(path: Path, rows: list[tuple[str, str, str]]) -> None:
    def s(text: str) -> Py2Str:
        return Py2Str(text.encode("latin-1"))

    regular = {s(a): 0 for a, _, m in rows if m != "digest"}
    digest = {s(a): 0 for a, _, m in rows if m == "digest"}
    path.parent.mkdir(parents=True)
    path.write_bytes(dumps({
        s("real_name"): s("Team"), s("host_name"): s("example.org"),
        s("preferred_language"): s("en"), s("subject_prefix"): s("[Team] "),
        s("members"): regular, s("digest_members"): digest,
        s("usernames"): {s(a): s(n) for a, n, _ in rows},
        s("user_options"): {s(a): 1 for a, _, m in rows if m == "nomail"},
        s("delivery_status"): {s(a): (2, 1.0e9) for a, _, m in rows if m == "nomail"},
        s("owner"): [s("owner@example.org")], s("moderator"): [],
        s("max_message_size"): 40, s("generic_nonmember_action"): 1,
    }))  # fmt: skip


def timed(db: Path, *args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "maillist", "--db", str(db), *args],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"maillist {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return took


def mailman3_list(mm: Mailman, rows: list[tuple[str, str, str]]) -> None:
    """The same people on a Mailman 3 list, one REST request each (as Postorius adds them)."""
    mm.call("POST", "domains", {"mail_host": "example.org"})
    mm.call("POST", "lists", {"fqdn_listname": "team@example.org"})
    modes = {"regular": "regular", "digest": "mime_digests", "nomail": "regular"}
    for address, name, mode in rows:
        member = mm.call("POST", "members", {
            "list_id": "team.example.org", "subscriber": address, "display_name": name,
            "delivery_mode": modes[mode], "pre_verified": "true", "pre_confirmed": "true",
            "pre_approved": "true", "send_welcome_message": "false",
        })  # fmt: skip
        if mode == "nomail":
            mm.call("PATCH", f"{member}/preferences", {"delivery_status": "by_user"})


def timed_mailman3(db: Path, url: str) -> float:
    import os

    os.environ["MAILMAN_REST_PASSWORD"] = PASSWORD
    return timed(db, "import", "mailman3", "team@example.org", "--rest", url)


def one_run(count: int, posts: int) -> dict[str, float]:
    rows = people(count)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        csv_file(tmp / "people.csv", rows)
        listdir = mlmmj_dir(tmp / "spool", rows, posts)
        config_pck(tmp / "lists" / "team" / "config.pck", rows)
        created = tmp / "csv.db"
        timed(created, "lists", "create", "team@example.org")
        return {
            "csv": timed(created, "members", "import", "team@example.org", str(tmp / "people.csv")),
            "mlmmj": timed(tmp / "mlmmj.db", "import", "mlmmj", str(listdir)),
            "mailman2": timed(
                tmp / "mm2.db", "import", "mailman2", str(tmp / "lists" / "team" / "config.pck")
            ),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--posts", type=int, default=200, help="mlmmj archive messages")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--mailman3", type=int, default=0, metavar="N",
                        help="also N members read from a real Mailman 3 through REST "
                        "(make mailman3; filling it costs ~20 ms a member)")  # fmt: skip
    args = parser.parse_args()
    if args.mailman3:
        mailman3_figures(args.mailman3, args.runs)
    results = []
    for run in range(1, args.runs + 1):
        figures = one_run(args.members, args.posts)
        results.append(figures)
        print(f"run {run}: " + ", ".join(f"{k} {v:.2f} s" for k, v in figures.items()), flush=True)
    medians = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(f"\n{args.members:,} members (mlmmj also {args.posts} archived posts), median of "
          f"{args.runs}:")  # fmt: skip
    for name, value in medians.items():
        ratio = value / medians["csv"]
        print(f"  {name:9s} {value:6.2f} s  ({ratio:.2f}x the CSV members import)")


def mailman3_figures(count: int, runs: int) -> None:
    if missing():
        print(f"mailman3: skipped: {missing()}")
        return
    rows = people(count)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        mm = Mailman(tmp)
        try:
            mm.start()
            start = time.perf_counter()
            mailman3_list(mm, rows)
            print(f"mailman3: {count:,} members subscribed through REST in "
                  f"{time.perf_counter() - start:.1f} s")  # fmt: skip
            csv_file(tmp / "people.csv", rows)
            took = []
            for run in range(1, runs + 1):
                created = tmp / f"csv{run}.db"
                timed(created, "lists", "create", "team@example.org")
                csv = timed(
                    created, "members", "import", "team@example.org", str(tmp / "people.csv")
                )
                took.append((csv, timed_mailman3(tmp / f"mm3-{run}.db", mm.url)))
                print(f"run {run}: csv {csv:.2f} s, mailman3 {took[-1][1]:.2f} s", flush=True)
        finally:
            mm.stop()
    csv = statistics.median(t[0] for t in took)
    rest = statistics.median(t[1] for t in took)
    print(f"mailman3: {count:,} members, median of {runs}: {rest:.2f} s "
          f"({rest / csv:.1f}x the CSV import's {csv:.2f} s)\n")  # fmt: skip


if __name__ == "__main__":
    main()

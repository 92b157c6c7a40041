"""The archive's speed with a big history, printed (medians of several runs, same machine):

- `maillist archive import` of a 10,000-message mbox (one 200-post thread among them);
- the archive grown to --posts (default 100,000) posts by copying those rows in SQL;
- a 200-post thread page and a search over `maillist serve --http-port`: the first view of a
  thread (its bodies not yet rendered; right after start-up, and on a running server) and warm,
  timed from the client;
- `maillist archive render` of the 10,000-post list;
- peak memory (RSS) of each process.

    .venv-dev/bin/python bench/archive.py [--posts 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fanout import free_port
from ingest import Proc  # also points every server at a loopback resolver

LIST = "history@example.org"
WORDS = ("budget", "hiring", "rotation", "feedback", "delegation", "meetings", "coaching")


def mbox(path: Path, messages: int) -> None:
    """`messages` posts: a 200-post thread, the rest in threads of 1 to 10 posts."""
    with path.open("w") as out:
        thread, parent = 0, ""
        for n in range(messages):
            if n < 200:
                thread, parent = 0, ("m0@bench.example" if n else "")
            elif n % 7 == 0 or not parent:
                thread, parent = n, ""
            mid = f"m{n}@bench.example"
            refs = f"In-Reply-To: <{parent}>\nReferences: <{parent}>\n" if parent else ""
            word = WORDS[n % len(WORDS)]
            day = 1 + n % 28
            out.write(
                f"From p{n % 300}@people.example Mon Jan  1 00:00:00 2024\n"
                f"From: Person {n % 300} <p{n % 300}@people.example>\nTo: {LIST}\n"
                f"Subject: {'Re: ' if parent else ''}Thread {thread} about {word}\n"
                f"Message-ID: <{mid}>\nDate: Mon, {day:02d} Jan 2024 10:{n % 60:02d}:00 +0000\n"
                f"{refs}\nA post about {word} number {n}. " + "Some words of text. " * 30 + "\n"
                "> a quoted line from the message before\n\n-- \nPerson\n\n"
            )
            if not parent:
                parent = mid


def run(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS MB) of a command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, timeout=1800)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024


def grow(db: Path, target: int) -> int:
    """Copy the imported posts (with their search rows) under new ids until there are `target`."""
    conn = sqlite3.connect(db)
    have = conn.execute("SELECT COUNT(*) FROM messages WHERE kind = 'post'").fetchone()[0]
    round_ = 0
    while have < target:
        round_ += 1
        conn.execute("BEGIN")
        offset = conn.execute("SELECT MAX(id) FROM messages").fetchone()[0]
        toffset = conn.execute("SELECT MAX(id) FROM threads").fetchone()[0]
        conn.execute(
            "INSERT INTO threads (id, list_id, subject, subject_key, started_at, last_activity_at) "
            "SELECT id + ?, list_id, subject, subject_key, started_at, last_activity_at "
            "FROM threads WHERE id <= ?", (toffset, toffset))  # fmt: skip
        conn.execute(
            "INSERT INTO messages (id, list_id, kind, message_id, claimed, thread_id, parent_id, "
            "envelope_from, recipient, sender, sender_name, subject, date, in_reply_to, refs, raw, "
            "size, received_at, verdict, reasons) SELECT id + ?, list_id, kind, "
            "'c' || ? || '.' || message_id, claimed, thread_id + ?, parent_id + ?, envelope_from, "
            "recipient, sender, sender_name, subject, date, in_reply_to, refs, raw, size, "
            "received_at, verdict, reasons FROM messages WHERE kind = 'post' AND id <= ? "
            "LIMIT ?", (offset, round_, toffset, offset, offset, target - have))  # fmt: skip
        conn.execute(
            "INSERT INTO search (rowid, subject, body, author) SELECT rowid + ?, subject, body, "
            "author FROM search WHERE rowid <= ? AND rowid + ? IN (SELECT id FROM messages)",
            (offset, offset, offset),
        )
        conn.execute("COMMIT")
        have = conn.execute("SELECT COUNT(*) FROM messages WHERE kind = 'post'").fetchone()[0]
    conn.close()
    return int(have)


def fetch(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        response.read()
    return (time.perf_counter() - start) * 1000


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "history.mbox"
        mbox(source, args.messages)
        imports = []
        for n in range(args.runs):
            db = tmp / f"import-{n}.db"
            cli = [sys.executable, "-m", "maillist", "--db", str(db)]
            subprocess.run([*cli, "lists", "create", LIST], check=True, capture_output=True)
            subprocess.run([*cli, "lists", "set", LIST, "archive", "public"], check=True,
                           capture_output=True)  # fmt: skip
            imports.append(run([*cli, "archive", "import", LIST, str(source)]))
            print(f"  import run {n + 1}: {imports[-1][0]:.1f} s", flush=True)
        print(
            f"import of {args.messages:,} messages: median {statistics.median(i[0] for i in imports):.1f} s "
            f"(target < 30 s), peak RSS {max(i[1] for i in imports):.0f} MB", flush=True,
        )  # fmt: skip
        db = tmp / "import-0.db"
        cli = [sys.executable, "-m", "maillist", "--db", str(db)]
        renders = []
        for n in range(args.runs):
            out = tmp / f"site-{n}"
            renders.append(run([*cli, "archive", "render", LIST, str(out)]))
            print(f"  render run {n + 1}: {renders[-1][0]:.1f} s", flush=True)
        again = run([*cli, "archive", "render", LIST, str(tmp / "site-0")])
        print(
            f"static render of {args.messages:,} posts: median {statistics.median(r[0] for r in renders):.1f} s "
            f"(target < 20 s), peak RSS {max(r[1] for r in renders):.0f} MB; a second run over the "
            f"same directory {again[0]:.1f} s", flush=True,
        )  # fmt: skip
        total = grow(db, args.posts)
        print(f"archive grown to {total:,} posts", flush=True)
        http = free_port()
        server = Proc([*cli, "serve", "--port", "0", "--http-port", str(http), "--outbox",
                       str(tmp / "out")], tmp / "serve.log")  # fmt: skip
        try:
            base = f"http://127.0.0.1:{http}/lists/{LIST}"
            conn = sqlite3.connect(db)
            threads = [
                conn.execute(
                    "SELECT thread_id FROM messages WHERE message_id = ?", (mid,)
                ).fetchone()[0]
                for mid in ["m0@bench.example"] + [f"c{n}.m0@bench.example" for n in (1, 2, 3)]
            ]  # the 200-post thread and three copies of it (grow)
            conn.close()
            thread, others = threads[0], threads[1:]
            start = fetch(f"{base}/thread/{thread}")  # right after start-up
            firsts = [fetch(f"{base}/thread/{t}") for t in others]  # never seen, server running
            warm = [fetch(f"{base}/thread/{thread}") for _ in range(max(args.runs, 5) * 4)]
            print(
                f"200-post thread page in a {total:,}-post archive: first view (bodies not yet "
                f"rendered) median {statistics.median(firsts):.0f} ms of {len(firsts)} threads "
                f"(target < 50 ms), {start:.0f} ms right after start-up; warm median "
                f"{statistics.median(warm):.1f} ms (target < 50 ms)", flush=True,
            )  # fmt: skip
            searches = [fetch(f"{base}/search?q={WORDS[i % len(WORDS)]}+number")
                        for i in range(max(args.runs, 5) * 4)]  # fmt: skip
            print(
                f"search over {total:,} posts: median {statistics.median(searches):.1f} ms "
                f"(target < 100 ms); server peak RSS {rss_peak_mb(server.proc.pid):.0f} MB",
                flush=True,
            )
        except Exception:
            print(f"http {http}, server {server.port}, alive {server.proc.poll()}", file=sys.stderr)
            print((tmp / "serve.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            server.stop()
    os.sync()


if __name__ == "__main__":
    main()

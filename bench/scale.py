"""Several processes on one PostgreSQL database, against one process on SQLite, in the same run:

    python bench/scale.py --posts 3000 --members 10000 --fanout-posts 4 --runs 3

Ingest: `--posts` posts over 8 concurrent SMTP clients, spread evenly over 1, 2 or 3 `maillist
serve` processes sharing one database (every post stored, threaded, given its fan-out job; 250
only after its commit). Fan-out: `--fanout-posts` posts to a `--members` list, delivered by the
same 1, 2 or 3 processes into Postfix's smtp-sink; time from the first post to the last batch
recorded as sent. PostgreSQL runs from Debian's package in a throwaway cluster on loopback
(tests/pgserver.py), with synchronous_commit on. Prints each run and the medians, each figure
also as a ratio to SQLite's figure of the same run."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parent.parent / "tests"))
from fanout import SmtpSink, make_db, post
from ingest import Proc, ensure_postfix_tools, fresh_db
from loadgen import run as python_load

from maillist.db.postgres import connect
from pgserver import PgCluster, unavailable_reason

LIST = "bench@example.org"
CLIENTS = 8


def query(db: str, sql: str) -> tuple[int, ...]:
    if db.startswith("postgresql://"):
        conn = connect(db)
        try:
            return tuple(int(v or 0) for v in conn.execute(sql).fetchone())
        finally:
            conn.close()
    import sqlite3

    lite = sqlite3.connect(db, timeout=10)
    try:
        return tuple(int(v or 0) for v in lite.execute(sql).fetchone())
    finally:
        lite.close()


def servers(db: str, n: int, tmp: Path, tag: str, *args: str) -> list[Proc]:
    cmd = [sys.executable, "-m", "maillist", "--db", db, "serve", "--port", "0"]
    cmd += ["--log-level", "warning", *args]
    return [Proc(cmd, tmp / f"{tag}-{i}.log") for i in range(n)]


def ingest_run(db: str, n: int, posts: int, tmp: Path, tag: str) -> float:
    procs = servers(db, n, tmp, tag)
    shares = [posts // n + (1 if i < posts % n else 0) for i in range(n)]
    clients = [CLIENTS // n + (1 if i < CLIENTS % n else 0) for i in range(n)]

    async def go() -> tuple[float, int]:
        start = time.perf_counter()
        results = await asyncio.gather(
            *(python_load(p.port, LIST, s, c, f"{tag}{i}")
              for i, (p, s, c) in enumerate(zip(procs, shares, clients, strict=True)))
        )  # fmt: skip
        return time.perf_counter() - start, sum(ok for _, ok in results)

    try:
        wall, ok = asyncio.run(go())
    finally:
        for p in procs:
            p.stop()
    stored = query(db, "SELECT COUNT(*) FROM messages WHERE raw IS NOT NULL")[0]
    if ok != posts or stored != posts:
        raise SystemExit(f"{tag}: {ok} accepted, {stored} stored of {posts}")
    return posts / wall


def fanout_run(
    db: str, n: int, posts: int, expected: int, sink: SmtpSink, tmp: Path, tag: str
) -> float:
    procs = servers(db, n, tmp, tag, "--relay", f"127.0.0.1:{sink.port}")
    try:
        start = time.perf_counter()
        post(procs[0].port, posts, tag)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done, waiting = query(
                db,
                "SELECT COALESCE(SUM(CASE WHEN state = 'sent' THEN length(recipients) - "
                "length(replace(recipients, char(10), '')) + 1 END), 0), "
                "COUNT(*) FILTER (WHERE state NOT IN ('sent', 'failed')) FROM outbound_batches",
            )
            pending = query(db, "SELECT COUNT(*) FROM outbound_jobs WHERE state = 'pending'")[0]
            if done >= expected and waiting == 0 and pending == 0:
                break
            time.sleep(0.02)
        else:
            raise SystemExit(f"{tag}: not delivered in 600 s")
        return expected / (time.perf_counter() - start)
    finally:
        for p in procs:
            p.stop()


def new_pg_db(cluster: PgCluster, tmp: Path, members: int, name: str) -> str:
    """A PostgreSQL database holding what make_db built in a SQLite file (copied by
    `maillist db migrate`, which is also what a site moving over does)."""
    lite = make_db(tmp, name, members) if members else fresh_db(tmp, name)
    url = cluster.new_database()
    subprocess.run(
        [sys.executable, "-m", "maillist", "--db", str(lite), "db", "migrate", "--to", url],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--members", type=int, default=10000)
    parser.add_argument("--fanout-posts", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=3)
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        raise SystemExit(f"needs PostgreSQL: {reason}")
    ensure_postfix_tools()
    configs = ["sqlite x1", *(f"postgresql x{n}" for n in range(1, args.processes + 1))]
    ingest: dict[str, list[float]] = {c: [] for c in configs}
    fanout: dict[str, list[float]] = {c: [] for c in configs}
    expected = args.members * args.fanout_posts
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cluster = PgCluster.start(tmp / "pg")
        sink = SmtpSink()
        try:
            for run in range(1, args.runs + 1):
                for config in configs:
                    n = int(config.rsplit("x", 1)[1])
                    tag = f"r{run}-{config.replace(' ', '')}"
                    if config.startswith("sqlite"):
                        db = str(fresh_db(tmp, f"{tag}-i"))
                        fdb = str(make_db(tmp, f"{tag}-f", args.members))
                    else:
                        db = new_pg_db(cluster, tmp, 0, f"{tag}-i")
                        fdb = new_pg_db(cluster, tmp, args.members, f"{tag}-f")
                    ingest[config].append(ingest_run(db, n, args.posts, tmp, tag + "i"))
                    fanout[config].append(
                        fanout_run(fdb, n, args.fanout_posts, expected, sink, tmp, tag + "f")
                    )
                    print(
                        f"run {run} {config:<14} ingest {ingest[config][-1]:7,.0f} posts/s "
                        f"({ingest[config][-1] / ingest['sqlite x1'][-1]:.2f} of SQLite)   "
                        f"fan-out {fanout[config][-1]:8,.0f} rcpt/s "
                        f"({fanout[config][-1] / fanout['sqlite x1'][-1]:.2f} of SQLite)",
                        flush=True,
                    )
        finally:
            sink.stop()
            cluster.stop()
    print(f"\nmedians of {args.runs} runs ({args.posts:,} posts; {args.fanout_posts} posts x "
          f"{args.members:,} members):")  # fmt: skip
    base_i, base_f = statistics.median(ingest["sqlite x1"]), statistics.median(fanout["sqlite x1"])
    for config in configs:
        mi, mf = statistics.median(ingest[config]), statistics.median(fanout[config])
        print(f"  {config:<14} ingest {mi:7,.0f} posts/s ({mi / base_i:.2f})   "
              f"fan-out {mf:8,.0f} rcpt/s ({mf / base_f:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()

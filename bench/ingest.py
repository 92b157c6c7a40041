"""Sustained ingest: 8 concurrent SMTP clients posting to `maillist serve` (every post stored,
threaded, decided and given its fan-out job, 250 only after commit), against a bare aiosmtpd server
that stores nothing, measured in the same run as the ceiling.

    python bench/ingest.py --messages 4000 --runs 5 [--size 4000] [--soak 100000]

Load comes from Postfix's smtp-source (the bench installs Debian's postfix when it is missing and it
runs as root), else from the lean asyncio generator in bench/loadgen.py (`--generator python`). Prints per-run figures and medians; --soak also sends
that many posts to one server and prints its RSS as they go (memory should stay flat)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parent.parent / "tests" / "smoke"))
from loadgen import run as python_load
from nxdns import nxdomain_resolver

# Every server the benchmarks start asks this loopback resolver (NXDOMAIN for every DMARC and
# DKIM question): posts are checked as in production, and nothing leaves the machine.
os.environ.setdefault("MAILLIST_DNS", f"127.0.0.1:{nxdomain_resolver()}")

HERE = Path(__file__).parent
LIST = "bench@example.org"


def ensure_postfix_tools() -> None:
    if shutil.which("smtp-sink") and shutil.which("smtp-source"):
        return
    apt_install("postfix", "Postfix's smtp-sink and smtp-source")


def apt_install(package: str, what: str) -> None:
    """Debian's `package` installed, when this runs as root; a clear exit otherwise."""
    if os.geteuid() != 0:
        raise SystemExit(f"needs {what}: apt-get install {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=env)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Proc:
    """A server process with its port; stopped by PID, CPU seconds read with wait4."""

    def __init__(self, cmd: list[str], log: Path, port_file: Path | None = None) -> None:
        self.log = log.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log)
        self.port = self._port(port_file)

    def _port(self, port_file: Path | None) -> int:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if port_file is not None:
                if port_file.exists() and port_file.read_text():
                    return int(port_file.read_text())
                time.sleep(0.02)
                continue
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            match = re.search(rb"listening on [\d.]+:(\d+)", line)
            if match:
                return int(match.group(1))
        self.proc.kill()
        raise SystemExit("server did not start")

    def stop(self) -> float:
        self.proc.send_signal(signal.SIGTERM)
        _, _, usage = os.wait4(self.proc.pid, 0)
        self.log.close()
        return usage.ru_utime + usage.ru_stime


GENERATOR = {"name": "auto"}
SIZE = [1000]  # bytes of each post's body (smtp-source -l), set by --size


def load(port: int, messages: int, clients: int, tag: str) -> float:
    """Wall seconds to send `messages` posts over `clients` connections."""
    if GENERATOR["name"] == "smtp-source":
        start = time.perf_counter()
        subprocess.run(
            ["smtp-source", "-s", str(clients), "-m", str(messages), "-l", str(SIZE[0]),
             "-f", "load@example.org", "-t", LIST, f"127.0.0.1:{port}"],
            check=True, timeout=600,
        )  # fmt: skip
        return time.perf_counter() - start
    wall, ok = asyncio.run(python_load(port, LIST, messages, clients, tag))
    if ok != messages:
        raise SystemExit(f"only {ok} of {messages} posts got 250")
    return wall


def fresh_db(tmp: Path, name: str) -> Path:
    db = tmp / f"{name}.db"
    cli = [sys.executable, "-m", "maillist", "--db", str(db)]
    subprocess.run(
        [*cli, "lists", "create", LIST, "--posting", "open"], check=True, capture_output=True
    )
    return db


def maillist_server(db: Path, tmp: Path) -> Proc:
    cmd = [sys.executable, "-m", "maillist", "--db", str(db), "serve", "--port", "0"]
    return Proc(cmd, tmp / f"{db.stem}.log")


def bare_server(tmp: Path, name: str) -> Proc:
    port_file = tmp / f"{name}.port"
    return Proc(
        [sys.executable, str(HERE / "bare_smtp.py"), str(port_file)], tmp / f"{name}.log", port_file
    )


def stored(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(db)
    try:
        posts = conn.execute("SELECT COUNT(*) FROM messages WHERE raw IS NOT NULL").fetchone()[0]
        jobs = conn.execute("SELECT COUNT(*) FROM outbound_jobs").fetchone()[0]
        return int(posts), int(jobs)
    finally:
        conn.close()


def soak(tmp: Path, total: int, clients: int) -> None:
    db = fresh_db(tmp, "soak")
    server = maillist_server(db, tmp)
    step = max(total // 10, 1)
    print(f"\nsoak: {total:,} posts to one server, RSS after each {step:,}", flush=True)
    samples = []
    sent = 0
    start = time.perf_counter()
    while sent < total:
        n = min(step, total - sent)
        load(server.port, n, clients, f"soak{sent}")
        sent += n
        samples.append(rss_mb(server.proc.pid))
        print(
            f"  {sent:>7,} posts  RSS {samples[-1]:6.1f} MB  ({sent / (time.perf_counter() - start):,.0f} posts/s)",
            flush=True,
        )
    server.stop()
    posts, _ = stored(db)
    print(
        f"soak: stored {posts:,}; RSS first {samples[0]:.1f} MB, last {samples[-1]:.1f} MB, "
        f"growth {samples[-1] - samples[0]:+.1f} MB over {total - step:,} posts"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--size", type=int, default=1000, help="bytes of each post (smtp-source)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--soak", type=int, default=0, help="posts for the memory soak (0: skip)")
    parser.add_argument(
        "--generator",
        choices=["auto", "smtp-source", "python"],
        default="auto",
        help="smtp-source: a new connection per post; python: bench/loadgen.py, connections reused",
    )
    args = parser.parse_args()
    generator = args.generator
    if generator in {"auto", "smtp-source"}:
        try:
            ensure_postfix_tools()
        except (SystemExit, subprocess.CalledProcessError) as exc:
            if generator == "smtp-source":
                raise
            print(f"smtp-source unavailable ({exc}); using bench/loadgen.py")
    if generator == "auto":
        generator = "smtp-source" if shutil.which("smtp-source") else "python"
    GENERATOR["name"] = generator
    SIZE[0] = args.size
    print(
        f"{args.messages:,} posts per run, {args.clients} concurrent clients, load from {generator}"
    )
    ours: list[float] = []
    ceiling: list[float] = []
    cpu: list[float] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for run in range(1, args.runs + 1):
            db = fresh_db(tmp, f"run{run}")
            server = maillist_server(db, tmp)
            wall = load(server.port, args.messages, args.clients, f"run{run}")
            cpu_s = server.stop()
            posts, jobs = stored(db)
            if posts != args.messages or jobs != args.messages:
                raise SystemExit(
                    f"run {run}: stored {posts} posts / {jobs} jobs, expected {args.messages}"
                )
            bare = bare_server(tmp, f"bare{run}")
            bare_wall = load(bare.port, args.messages, args.clients, f"bare{run}")
            bare_cpu = bare.stop()
            ours.append(args.messages / wall)
            ceiling.append(args.messages / bare_wall)
            cpu.append(cpu_s)
            print(
                f"run {run}: maillist {ours[-1]:,.0f} posts/s "
                f"({cpu_s / args.messages * 1e3:.2f} ms CPU/post incl. start-up) | "
                f"bare aiosmtpd {ceiling[-1]:,.0f} msgs/s ({bare_cpu / args.messages * 1e3:.2f} ms) | "
                f"ratio {ours[-1] / ceiling[-1]:.0%}",
                flush=True,
            )
        med, ceil = statistics.median(ours), statistics.median(ceiling)
        print(
            f"\nmedian of {args.runs}: maillist {med:,.0f} posts/s stored+threaded with durable 250s; "
            f"bare aiosmtpd ceiling {ceil:,.0f} msgs/s; ratio {med / ceil:.0%} "
            f"(targets: >= 500 posts/s, >= 70%); server CPU {statistics.median(cpu):.1f} s per run"
        )
        if args.soak:
            soak(tmp, args.soak, args.clients)


if __name__ == "__main__":
    main()

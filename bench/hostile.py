"""What one hostile message costs everyone else: the three attacks of issue 20, each measured as
another client sees it.

    python bench/hostile.py [--runs 3] [--src DIR]

Each run makes a fresh database with the CLI (a public list, a member, a digest reader), starts
`maillist serve --http-port 0` and, while the attack is in flight, (a) probes the SMTP port every
50 ms from another client (connect, greeting, NOOP: the longest wait is what the attack froze)
and (b) sends ordinary posts one after another from 100 ms after the attack began until it is
over, each timed from connect to 250 (the longest is printed).

  bounce   a 3.8 KB DSN to LIST-bounces@ whose text part, after Netscape's marker, is one line of
           2,500 `<` (flufl.bounce's Netscape regex is cubic on it)
  archive  a member's post with an inner `Content-Type: text/plain; ;;;...` (30 KB, folded),
           then an anonymous GET of its /part/1 (the email package is quadratic in it)
  digest   the same post waiting for a digest reader, then a restart: the digest is built at
           start (`start` is from exec to the port announced, against a start with nothing
           waiting measured in the same run)

--src runs another checkout's code (its `src` directory on PYTHONPATH), e.g. a worktree of the
commit before the fix, so before and after are measured on the same machine. Prints medians of
the runs."""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import re
import select
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

LIST = "pub@example.org"


def env(src: str) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("MAILLIST_")}
    if src:
        values["PYTHONPATH"] = str(Path(src) / "src")
    return values


def cli(src: str, db: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "maillist", "--db", str(db), *args],
        check=True, capture_output=True, env=env(src), timeout=120,
    )  # fmt: skip


class Server:
    def __init__(self, src: str, db: Path) -> None:
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "maillist", "--db", str(db), "serve", "--port", "0",
             "--http-port", "0", "--outbox", str(db.parent / "outbox")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env(src),
        )  # fmt: skip
        self.port = self.http = 0
        assert self.proc.stdout is not None
        pending = b""
        deadline = time.monotonic() + 120
        while not self.port and time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                pending += os.read(self.proc.stdout.fileno(), 4096)
                for line in pending.split(b"\n"):
                    found = re.search(rb"listening on [^\s:]+:(\d+)", line)
                    if found and b"http listening on" in line:
                        self.http = int(found[1])
                    elif found:
                        self.port = int(found[1])
        assert self.port, pending
        self.start = time.monotonic() - started

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Prober(threading.Thread):
    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.waits, self.done = port, [0.0], threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            begun = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=120) as s:
                    reader = s.makefile("rb")
                    reader.readline()
                    s.sendall(b"NOOP\r\n")
                    reader.readline()
            except OSError:
                pass
            self.waits.append(time.monotonic() - begun)
            self.done.wait(0.05)


def post(port: int, sender: str, rcpt: str, raw: bytes) -> float:
    begun = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port, timeout=300) as client:
        client.sendmail(sender, [rcpt], raw)
    return time.monotonic() - begun


def ordinary(n: int) -> bytes:
    return (
        f"From: anne@example.org\r\nTo: {LIST}\r\nSubject: ordinary\r\n"
        f"Message-ID: <ordinary{n}.{time.time_ns()}@example.org>\r\n\r\nHello.\r\n"
    ).encode()


def hostile_dsn(width: int = 2500) -> bytes:
    text = b"This Message was undeliverable due to the following reason:\r\n" + b"<" * width
    body = base64.encodebytes(text + b"\r\n").replace(b"\n", b"\r\n")
    return (
        b"From: MAILER-DAEMON@mx.example.net\r\nTo: pub-bounces@example.org\r\nSubject: x\r\n"
        b"Message-ID: <dsn" + str(time.time_ns()).encode() + b"@mx.example.net>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/report; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body
        + b"--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        b"Action: failed\r\n\r\n--b1--\r\n"
    )  # fmt: skip


def poison(mid: str, semicolons: int = 30_000) -> bytes:
    folded = "\r\n ".join(";" * 900 for _ in range(semicolons // 900))
    return (
        f"From: anne@example.org\r\nTo: {LIST}\r\nSubject: poison\r\nMessage-ID: <{mid}>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="p1"\r\n\r\n'
        "--p1\r\nContent-Type: text/plain\r\n\r\nHello all.\r\n"
        f"--p1\r\nContent-Type: text/plain; {folded}\r\n\r\nattached\r\n--p1--\r\n"
    ).encode()


def site(src: str, where: Path) -> Path:
    db = where / "m.db"
    for args in (
        ("lists", "create", LIST, "--posting", "open"),
        ("lists", "set", LIST, "archive", "public"),
        ("lists", "set", LIST, "digest_hour", "0"),
        ("members", "add", LIST, "anne@example.org"),
        ("members", "add", LIST, "dora@example.org", "--mode", "digest"),
    ):
        cli(src, db, *args)
    return db


def under_attack(server: Server, attack: Callable[[], object]) -> tuple[float, float]:
    """(longest wait of another client, longest 250 of an ordinary post) while `attack` runs:
    ordinary posts go one after another, from 100 ms after it starts until it is over."""
    prober = Prober(server.port)
    prober.start()
    thread = threading.Thread(target=attack, daemon=True)
    thread.start()
    time.sleep(0.1)  # a bench's pacing: the attack is under way
    posts = [post(server.port, "anne@example.org", LIST, ordinary(0))]
    while thread.is_alive():
        posts.append(post(server.port, "anne@example.org", LIST, ordinary(len(posts))))
        thread.join(0.2)
    prober.done.set()
    prober.join(300)
    return max(prober.waits), max(posts)


def run_bounce(src: str, where: Path) -> dict[str, float]:
    server = Server(src, site(src, where))
    try:
        wait, took = under_attack(
            server, lambda: post(server.port, "", "pub-bounces@example.org", hostile_dsn())
        )
    finally:
        server.stop()
    return {"wait": wait, "post": took}


def run_archive(src: str, where: Path) -> dict[str, float]:
    server = Server(src, site(src, where))
    try:
        post(server.port, "anne@example.org", LIST, poison("poison@example.org"))
        url = f"http://127.0.0.1:{server.http}/lists/{LIST}/msg/poison@example.org/part/1"

        def read() -> None:
            with contextlib.suppress(OSError):  # a 503 is the fixed server's answer
                urllib.request.urlopen(url, timeout=300).read()

        wait, took = under_attack(server, read)
    finally:
        server.stop()
    return {"wait": wait, "post": took}


def run_digest(src: str, where: Path) -> dict[str, float]:
    db = site(src, where)
    first = Server(src, db)
    baseline = first.start
    try:
        post(first.port, "anne@example.org", LIST, poison("poison@example.org"))
    finally:
        first.stop()
    second = Server(src, db)
    try:
        wait, took = under_attack(second, lambda: time.sleep(1.0))
    finally:
        second.stop()
    return {"start": second.start, "baseline": baseline, "wait": wait, "post": took}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--src", default="", help="another checkout to measure (its src/)")
    args = parser.parse_args()
    label = args.src or "this checkout"
    print(f"code: {label}; medians of {args.runs} runs")
    for name, fn in (("bounce", run_bounce), ("archive", run_archive), ("digest", run_digest)):
        results = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as where:
                results.append(fn(args.src, Path(where)))
        figures = {k: statistics.median(r[k] for r in results) for k in results[0]}
        line = (
            f"{name:8} another client's longest wait {figures['wait'] * 1000:8.0f} ms   "
            f"longest 250 of an ordinary post {figures['post'] * 1000:8.0f} ms"
        )
        if "start" in figures:
            line += (
                f"   start {figures['start']:.1f} s (nothing waiting: {figures['baseline']:.1f} s)"
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()

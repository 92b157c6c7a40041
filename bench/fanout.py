"""Fan-out: posts to a 10,000-member list delivered by `maillist serve --relay` into Postfix's
smtp-sink on loopback, against Postfix's own smtp-source sending the same shape into the same sink
in the same run (the ceiling).

    python bench/fanout.py --members 10000 --posts 10 --runs 3 [--personal] [--latency] [--memory 100000] [--dkim]

Installs Debian's postfix (for smtp-sink and smtp-source) when they are missing and this runs as
root. Prints recipient-deliveries per second, the ratio to the ceiling, time from the first 250 to
the last delivery, server CPU seconds and peak RSS, per run and as medians."""

from __future__ import annotations

import argparse
import os
import re
import signal
import smtplib
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import Proc, ensure_postfix_tools, rss_mb

LIST = "bench@example.org"
CONNECTIONS = [4]  # maillist serve --connections, set from the command line
DKIM = [False]  # sign copies (maillist dkim keygen for the list's domain), set by --dkim


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpSink:
    """Postfix's smtp-sink: accepts everything, as fast as anything on this machine."""

    def __init__(self) -> None:
        self.port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            ["smtp-sink", *user, f"127.0.0.1:{self.port}", "1024"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise SystemExit("smtp-sink did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


def ceiling(port: int, recipients: int, per_transaction: int, connections: int) -> float:
    """Recipients/s for smtp-source sending `recipients` in transactions of `per_transaction`."""
    messages = max(recipients // per_transaction, 1)
    start = time.perf_counter()
    subprocess.run(
        ["smtp-source", "-s", str(connections), "-m", str(messages), "-r", str(per_transaction),
         "-l", "1000", "-f", "src@example.org", "-t", "rcpt@example.org", f"127.0.0.1:{port}"],
        check=True, timeout=600,
    )  # fmt: skip
    return messages * per_transaction / (time.perf_counter() - start)


def make_db(
    tmp: Path, name: str, members: int, *settings: tuple[str, str], dkim: bool | None = None
) -> Path:
    db = tmp / f"{name}.db"
    cli = [sys.executable, "-m", "maillist", "--db", str(db)]
    csv_file = tmp / f"{name}.csv"
    with csv_file.open("w") as handle:
        handle.write("address\n")
        for i in range(members):
            handle.write(f"member{i}@domain{i % 50}.example\n")

    def run(*a: str) -> None:
        subprocess.run([*cli, *a], check=True, capture_output=True)

    run("lists", "create", LIST, "--posting", "open")
    run("members", "import", LIST, str(csv_file))
    for option, value in settings:
        run("lists", "set", LIST, option, value)
    if DKIM[0] if dkim is None else dkim:
        run("dkim", "keygen", LIST.rsplit("@", 1)[1])
    return db


def sent(db: Path) -> tuple[int, int]:
    """(recipients in sent batches, batches still open)."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        row = conn.execute(
            "SELECT COALESCE(SUM(CASE WHEN state = 'sent' THEN "
            "length(recipients) - length(replace(recipients, char(10), '')) + 1 END), 0), "
            "COALESCE(SUM(state NOT IN ('sent', 'failed')), 0) FROM outbound_batches"
        ).fetchone()
        jobs = conn.execute("SELECT COUNT(*) FROM outbound_jobs WHERE state = 'pending'").fetchone()
        return int(row[0]), int(row[1]) + int(jobs[0])
    finally:
        conn.close()


def post(port: int, n: int, tag: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        for i in range(n):
            raw = (
                f"From: poster@example.org\r\nTo: {LIST}\r\nSubject: fan-out {tag} {i}\r\n"
                f"Message-ID: <{tag}-{i}@bench.example>\r\n\r\n" + "Body line of a post.\r\n" * 40
            ).encode()
            client.sendmail("poster@example.org", [LIST], raw)


def fanout_run(
    db: Path, tmp: Path, sink: SmtpSink, posts: int, expected: int, tag: str
) -> dict[str, float]:
    server = Proc(
        [sys.executable, "-m", "maillist", "--db", str(db), "serve", "--port", "0",
         "--relay", f"127.0.0.1:{sink.port}", "--log-level", "warning",
         "--connections", str(CONNECTIONS[0])],
        tmp / f"{tag}.log",
    )  # fmt: skip
    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], rss_mb(server.proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    post(server.port, posts, tag)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        done, open_ = sent(db)
        if done >= expected and open_ == 0:
            break
        time.sleep(0.025)  # each look costs CPU the server would use: not too often
    else:
        raise SystemExit(f"{tag}: only {sent(db)[0]} of {expected} delivered in 600 s")
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    cpu = server.stop()
    return {"elapsed": elapsed, "rate": expected / elapsed, "cpu": cpu, "rss": peak[0]}


def latency(tmp: Path, members: int, posts: int) -> list[float]:
    """Milliseconds from each post's 250 to its first copy arriving at a sink that timestamps
    arrivals (aiosmtpd in this process; smtp-sink cannot say when)."""
    from aiosmtpd.controller import Controller

    arrived: dict[str, float] = {}
    lock = threading.Condition()

    class Stamp:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            data = getattr(envelope, "original_content", b"") or b""
            for line in data.split(b"\r\n"):
                if line.lower().startswith(b"message-id:"):
                    with lock:
                        arrived.setdefault(
                            line.split(b"<")[1].split(b">")[0].decode(), time.perf_counter()
                        )
                        lock.notify_all()
            return "250 OK"

    port = free_port()
    controller = Controller(Stamp(), hostname="127.0.0.1", port=port)
    controller.start()
    db = make_db(tmp, "latency", members)
    server = Proc(
        [sys.executable, "-m", "maillist", "--db", str(db), "serve", "--port", "0",
         "--relay", f"127.0.0.1:{port}", "--log-level", "warning"],
        tmp / "latency.log",
    )  # fmt: skip
    results = []
    try:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
            for i in range(posts):
                mid = f"lat-{i}@bench.example"
                raw = f"From: p@example.org\r\nSubject: l{i}\r\nMessage-ID: <{mid}>\r\n\r\nbody\r\n"
                client.sendmail("p@example.org", [LIST], raw.encode())
                accepted = time.perf_counter()
                with lock:
                    if not lock.wait_for(partial(arrived.__contains__, mid), 10):
                        raise SystemExit(f"post {i} was not delivered within 10 s")
                results.append((arrived[mid] - accepted) * 1000)
    finally:
        server.stop()
        controller.stop()
    return results


def report(label: str, runs: list[dict[str, float]], ceilings: list[float], unit: str) -> None:
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    ceil = statistics.median(ceilings)
    print(
        f"{label}: {med['rate']:,.0f} {unit}/s, last delivery {med['elapsed']:.2f} s after the first post, "
        f"server CPU {med['cpu']:.1f} s, peak RSS {med['rss']:.0f} MB | smtp-source ceiling {ceil:,.0f} {unit}/s, "
        f"ratio {med['rate'] / ceil:.0%} (median of {len(runs)})",
        flush=True,
    )


PERSONAL = (("personalize", "yes"), ("web_url", "https://lists.example.org"))  # one-click links


def signature_ceiling() -> float:
    """RSA-2048 signatures/s on every core (`openssl speed -multi`), measured in this run: a
    personalised signed copy needs at least one."""
    out = subprocess.run(
        ["openssl", "speed", "-seconds", "2", "-multi", str(os.cpu_count() or 1), "rsa2048"],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout  # fmt: skip
    line = next(x for x in out.splitlines()[::-1] if x.startswith("rsa 2048 bits"))
    return float(line.split()[5])


def signing_comparison(tmp: Path, sink: SmtpSink, members: int, runs: int) -> None:
    """One post to `members`, unsigned and signed (shared: DKIM-Signature and an ARC set on the
    one copy; personalised, with one-click links: the ARC set once, a DKIM signature a copy),
    each pair back to back in every run, beside the machine's RSA signature ceiling measured in
    the same run. Then a sample of each mode's signed copies is checked with dkimpy."""
    for mode, settings in (("shared", ()), ("personalised", PERSONAL)):
        rates: dict[bool, list[float]] = {False: [], True: []}
        ceilings: list[float] = []
        for n in range(runs):
            for signed in (False, True):
                tag = f"s-{mode[0]}{n}{'k' if signed else 'u'}"
                db = make_db(tmp, tag, members, *settings, dkim=signed)
                rates[signed].append(fanout_run(db, tmp, sink, 1, members, tag)["rate"])
            ceilings.append(signature_ceiling())
            print(
                f"  {mode} run {n + 1}: unsigned {rates[False][-1]:,.0f}, signed "
                f"{rates[True][-1]:,.0f} copies/s | RSA-2048 ceiling {ceilings[-1]:,.0f} signatures/s",
                flush=True,
            )
        off, on = statistics.median(rates[False]), statistics.median(rates[True])
        ceiling_ = statistics.median(ceilings)
        versus = (
            f"; {on / ceiling_:.0%} of the machine's {ceiling_:,.0f} RSA-2048 signatures/s "
            "(one a copy)" if mode == "personalised" else ""
        )  # fmt: skip
        print(
            f"signing, {mode}, 1 post x {members:,} members: unsigned {off:,.0f} copies/s, "
            f"signed {on:,.0f} copies/s, ratio {on / off:.2f}{versus} (median of {runs})",
            flush=True,
        )
        checked = verify_sample(tmp, settings, 40, mode[0])
        print(
            f"  {mode}: {checked} signed copies of a 40-member post verified with dkimpy (DKIM and ARC)"
        )


def verify_sample(tmp: Path, settings: tuple[tuple[str, str], ...], members: int, tag: str) -> int:
    """Every copy of one post to `members`, captured by aiosmtpd and checked with dkimpy
    against the TXT record `maillist dkim show` prints: DKIM (each signature) and the ARC
    chain. Raises SystemExit on the first copy that does not verify."""
    import dkim  # type: ignore[import-untyped]  # installed with maillist
    from aiosmtpd.controller import Controller

    copies: list[bytes] = []
    lock = threading.Condition()

    class Capture:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            with lock:
                copies.append(getattr(envelope, "original_content", b"") or b"")
                lock.notify_all()
            return "250 OK"

    db = make_db(tmp, f"verify-{tag}", members, *settings, dkim=True)
    shown = subprocess.run(
        [sys.executable, "-m", "maillist", "--db", str(db), "dkim", "show", "example.org"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    records = {
        line.split()[0].encode(): "".join(re.findall(r'"([^"]*)"', line)).encode()
        for line in shown.splitlines()
        if "._domainkey." in line
    }
    port = free_port()
    controller = Controller(Capture(), hostname="127.0.0.1", port=port)
    controller.start()
    server = Proc(
        [sys.executable, "-m", "maillist", "--db", str(db), "serve", "--port", "0",
         "--relay", f"127.0.0.1:{port}", "--log-level", "warning"],
        tmp / f"verify-{tag}.log",
    )  # fmt: skip
    try:
        post(server.port, 1, f"verify-{tag}")
        with lock:
            if not lock.wait_for(lambda: len(copies) >= members, 60):
                raise SystemExit(f"only {len(copies)} of {members} copies arrived in 60 s")
    finally:
        server.stop()
        controller.stop()

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return records[name]

    for data in copies:
        checker = dkim.DKIM(data)
        count = data.count(b"\r\nDKIM-Signature:") + data.startswith(b"DKIM-Signature:")
        if not count or not all(checker.verify(idx=i, dnsfunc=dns) for i in range(count)):
            raise SystemExit(
                "a signed copy does not verify:\n" + data[:2000].decode("utf-8", "replace")
            )
        if dkim.arc_verify(data, dnsfunc=dns)[0] != b"pass":
            raise SystemExit("a sealed copy's ARC chain does not verify")
    return len(copies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--posts", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--personal", action="store_true", help="also measure personalised (VERP) mode"
    )
    parser.add_argument(
        "--memory", type=int, default=0, help="members for the peak-memory run (0: skip)"
    )
    parser.add_argument(
        "--latency",
        type=int,
        default=0,
        help="posts to time from 250 to first delivery (100 members)",
    )
    parser.add_argument("--no-plain", action="store_true", help="skip the non-personalised runs")
    parser.add_argument("--connections", type=int, default=4, help="maillist serve --connections")
    parser.add_argument("--dkim", action="store_true", help="sign every copy (DKIM, RSA-2048)")
    parser.add_argument(
        "--signing",
        type=int,
        default=0,
        help="members for the signing comparison: DKIM+ARC on vs off, shared and personalised, "
        "interleaved in the same run (0: skip)",
    )
    args = parser.parse_args()
    if args.no_plain and not (args.personal or args.signing):
        parser.error("--no-plain leaves nothing to measure: add --personal or --signing")
    CONNECTIONS[0] = args.connections
    DKIM[0] = args.dkim
    ensure_postfix_tools()
    sink = SmtpSink()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            for posts in [] if args.no_plain else sorted({1, args.posts}):
                runs, ceilings = [], []
                for n in range(args.runs):
                    db = make_db(tmp, f"f{posts}-{n}", args.members)
                    # maillist's members plus the poster is not a member: members x posts copies
                    runs.append(
                        fanout_run(db, tmp, sink, posts, args.members * posts, f"f{posts}-{n}")
                    )
                    ceilings.append(ceiling(sink.port, args.members * posts, 100, 4))
                    print(
                        f"  {posts} post(s) run {n + 1}: {runs[-1]['rate']:,.0f} rcpt/s in "
                        f"{runs[-1]['elapsed']:.2f} s | ceiling {ceilings[-1]:,.0f} rcpt/s",
                        flush=True,
                    )
                report(f"{posts} post(s) x {args.members:,} members", runs, ceilings, "recipients")
            if args.personal:
                runs, ceilings = [], []
                for n in range(args.runs):
                    db = make_db(tmp, f"p-{n}", args.members, *PERSONAL)
                    runs.append(fanout_run(db, tmp, sink, 1, args.members, f"p-{n}"))
                    ceilings.append(ceiling(sink.port, args.members, 1, 4))
                    print(f"  personalised run {n + 1}: {runs[-1]['rate']:,.0f} msgs/s", flush=True)
                report(
                    f"personalised, 1 post x {args.members:,} members", runs, ceilings, "messages"
                )
            if args.signing:
                signing_comparison(tmp, sink, args.signing, args.runs)
            if args.latency:
                samples = latency(tmp, 100, args.latency)
                print(
                    f"first delivery after the 250 (100 members): median "
                    f"{statistics.median(samples):.1f} ms, max {max(samples):.1f} ms, {len(samples)} posts",
                    flush=True,
                )
            if args.memory:
                db = make_db(tmp, "mem", args.memory)
                result = fanout_run(db, tmp, sink, 1, args.memory, "mem")
                print(
                    f"memory: 1 post x {args.memory:,} members delivered in {result['elapsed']:.2f} s, "
                    f"peak RSS {result['rss']:.0f} MB",
                    flush=True,
                )
    finally:
        sink.stop()


if __name__ == "__main__":
    main()

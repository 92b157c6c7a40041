"""PostgreSQL's round trips never hold the event loop: with the database behind a proxy that
adds 20 ms to every reply, an idle SMTP session is answered at once while posts are stored and a
10,000-member post is fanned out (every statement waits 20 ms, in the store's threads)."""

from __future__ import annotations

import asyncio
import csv
import json
import smtplib
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from dbutil import BACKEND
from pgserver import PgCluster
from serverutil import LoopServer, Server, message, wait_for
from sink import RunningSink, Sink
from test_smtp_receive import admin

pytestmark = pytest.mark.skipif(
    BACKEND != "postgresql", reason="about PostgreSQL's round trips: runs in the PostgreSQL suite"
)
DELAY = 0.020
MEMBERS = 10_000


class SlowProxy(LoopServer):
    """A TCP proxy on loopback that delays every chunk the database sends by DELAY."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        super().__init__()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float) -> None:
            try:
                while chunk := await src.read(65536):
                    if delay:
                        await asyncio.sleep(delay)
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer, 0.0), pipe(up_reader, writer, DELAY))


@pytest.fixture
def slow_url(tmp_path: Path, pg_cluster: PgCluster) -> Iterator[str]:
    url = pg_cluster.new_database()
    members = tmp_path / "members.csv"
    with members.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["address"])
        writer.writerows([f"m{i}@example{i % 97}.org"] for i in range(MEMBERS))
    for args in (
        ("lists", "create", "big@example.org", "--posting", "open"),
        ("lists", "create", "small@example.org", "--posting", "open"),
        ("members", "add", "small@example.org", "anne@example.org"),
        ("members", "import", "big@example.org", str(members)),
    ):
        done = admin(url, *args)
        assert done.returncode == 0, (args, done.stderr)
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    proxy = SlowProxy((parts.hostname, parts.port))
    netloc = parts.netloc.replace(f":{parts.port}", f":{proxy.port}")
    try:
        yield urlunsplit(parts._replace(netloc=netloc))
    finally:
        proxy.close()


def fanned(sink: Sink) -> int:
    return sum(1 for r in sink.rcpts() if r.startswith("m"))


# The idle client runs in a process of its own, so that what it measures is the server's answer,
# not this process's threads (the proxy, the sink, the poster) taking turns with it.
IDLE_CLIENT = """
import json, select, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=60)
reader = s.makefile("rb")
assert reader.readline().startswith(b"220")
s.sendall(b"EHLO idle\\r\\n")
while not reader.readline().startswith(b"250 "):
    pass
print("ready", flush=True)
waits = []
while not select.select([sys.stdin], [], [], 0.01)[0]:  # a client's pace, until told to stop
    started = time.monotonic()
    s.sendall(b"NOOP\\r\\n")
    line = reader.readline()
    assert line.startswith(b"250"), line
    waits.append(time.monotonic() - started)
s.sendall(b"QUIT\\r\\n")
print(json.dumps(waits), flush=True)
"""


def test_an_idle_session_is_answered_at_once_while_the_database_is_slow(
    slow_url: str, tmp_path: Path
) -> None:
    with RunningSink(Sink()) as sink:
        # NOOP is not progress (it does not hold a session open), so the idle limit is raised
        server = Server(
            slow_url,
            "--relay",
            f"127.0.0.1:{sink.port}",
            "--timeout",
            "600",
            log=tmp_path / "s.log",
        )
        idle = subprocess.Popen(
            [sys.executable, "-c", IDLE_CLIENT, str(server.port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        try:
            assert idle.stdout is not None
            assert idle.stdout.readline() == b"ready\n"
            stop = threading.Event()

            def posting() -> None:
                n = 0
                while not stop.is_set():
                    with smtplib.SMTP("127.0.0.1", server.port, timeout=60) as client:
                        client.sendmail("anne@example.org", ["small@example.org"], message(
                            message_id=f"p{n}@example.org", to="small@example.org"))  # fmt: skip
                    n += 1

            with smtplib.SMTP("127.0.0.1", server.port, timeout=60) as client:
                client.sendmail("anne@example.org", ["big@example.org"], message(
                    message_id="big@example.org", to="big@example.org"))  # fmt: skip
            began = time.monotonic()
            poster = threading.Thread(target=posting)
            poster.start()
            try:
                wait_for(lambda: fanned(sink) >= MEMBERS, "the fan-out", 240)
            finally:
                stop.set()
                poster.join(60)
            fanned_in = time.monotonic() - began
            out, _ = idle.communicate(b"stop\n", timeout=60)
            assert idle.returncode == 0, out
            waits: list[float] = json.loads(out)
        finally:
            idle.kill()
            idle.wait(10)
            server.stop()
    waits.sort()
    print(
        f"fan-out {fanned_in:.1f} s; {len(waits)} NOOPs, median {statistics.median(waits) * 1000:.1f} ms"
    )
    p99 = waits[int(len(waits) * 0.99)]
    assert p99 < DELAY, (
        f"NOOP waited {p99 * 1000:.1f} ms (p99 of {len(waits)}; median "
        f"{statistics.median(waits) * 1000:.1f} ms, {sum(w > DELAY for w in waits)} over "
        f"{DELAY * 1000:.0f} ms) with 20 ms database round trips"
    )

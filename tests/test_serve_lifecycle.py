"""`maillist serve` starts or fails at once, and SIGTERM/SIGINT end it in every state.

systemd's Restart=on-failure only works if a failed start exits non-zero, and a stop only works if
the process really ends: each test here runs the real command and waits for its exit by PID."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

import dbutil
from conftest import clean_env
from serverutil import LoopServer, Server, default_dns, message
from test_delivery import post
from test_smtp_receive import admin

EXIT_WITHIN = 15.0


def start(db: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "maillist",
            "--db",
            dbutil.location(db),
            "serve",
            "--dns",
            default_dns(),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
        cwd=db.parent,
    )


def finish(proc: subprocess.Popen[bytes], timeout: float = EXIT_WITHIN) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        raise AssertionError(f"serve did not exit within {timeout}s") from None
    return proc.returncode, err.decode()


@pytest.mark.parametrize("which", ["--port", "--http-port"])
def test_a_port_in_use_exits_non_zero_at_once(tmp_path: Path, which: str) -> None:
    db = tmp_path / "m.db"
    assert admin(db, "lists", "create", "team@example.org").returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = (
            ["--port", str(port)]
            if which == "--port"
            else ["--port", "0", "--http-port", str(port)]
        )
        code, err = finish(start(db, "--outbox", str(tmp_path / "out"), *args))
    assert code != 0
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


class CountingSink(LoopServer):
    """A PIPELINING relay that counts recipients and drops every connection once it has them all
    (a relay that restarts, or a network that fails, right after a fan-out)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.recipients = 0
        self.done = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        super().__init__()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        writer.write(b"220 sink\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-sink\r\n250 PIPELINING\r\n")
                elif verb == b"RCPT":
                    self.recipients += 1
                    writer.write(b"250 ok\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go\r\n")
                    while (await reader.readline()) not in (b".\r\n", b""):
                        pass
                    writer.write(b"250 queued\r\n")
                    if self.recipients >= self.expected:
                        self.done.set()
                        for w in list(self._writers):
                            w.transport.abort()
                        return
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    return
                else:
                    writer.write(b"250 ok\r\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def test_sigterm_after_a_fan_out_whose_relay_dropped_every_connection(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    members = 10_000
    csv = tmp_path / "members.csv"
    csv.write_text("address\n" + "".join(f"m{n}@example.org\n" for n in range(members)))
    assert admin(db, "lists", "create", "big@example.org", "--posting", "open").returncode == 0
    assert admin(db, "members", "import", "big@example.org", str(csv)).returncode == 0
    sink = CountingSink(members)
    try:
        server = Server(db, "--relay", f"127.0.0.1:{sink.port}")
        post(server.port, message(to="big@example.org"), rcpt="big@example.org")
        assert sink.done.wait(60), f"sink saw {sink.recipients} of {members}"
        time.sleep(2)  # the finding: SIGTERM two seconds after the relay dropped its connections
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=EXIT_WITHIN)
        assert time.monotonic() - started < EXIT_WITHIN
        assert server.proc.returncode == 0, server.log.read_text()[-2000:]
    finally:
        server.kill()
        sink.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_start_up_still_ends_the_process(tmp_path: Path, sig: int) -> None:
    db = tmp_path / "m.db"
    assert admin(db, "lists", "create", "team@example.org").returncode == 0
    proc = start(db, "--port", "0", "--outbox", str(tmp_path / "out"))
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # listening
        proc.send_signal(sig)
        code, err = finish(proc)
        assert code == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_http_port_accepts_as_soon_as_it_is_announced(tmp_path: Path) -> None:
    """`http listening` is printed after the socket listens: a client that connects at once is
    served, not refused (uvicorn starts accepting a moment later)."""
    db = tmp_path / "h.db"
    assert admin(db, "lists", "create", "team@example.org").returncode == 0
    for _ in range(3):
        srv = Server(db, "--http-port", "0")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{srv.http_port}/healthz", timeout=10
            ) as r:
                assert r.status == 200
        finally:
            assert srv.stop() == 0


def test_ctrl_c_closes_an_idle_client_at_once_and_a_second_one_stops_now(
    tmp_path: Path,
) -> None:
    """An idle SMTP client does not make a stop wait the whole drain: it gets `421` at once.
    A client in a transaction is let finish, unless the admin presses Ctrl-C again."""
    db = tmp_path / "m.db"
    assert admin(db, "lists", "create", "team@example.org").returncode == 0
    server = Server(db)
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    reader = idle.makefile("rb")
    assert reader.readline().startswith(b"220")
    busy = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    busy_reader = busy.makefile("rb")
    busy_reader.readline()
    busy.sendall(b"EHLO busy\r\n")
    while not busy_reader.readline().startswith(b"250 "):
        pass
    busy.sendall(b"MAIL FROM:<a@example.org>\r\n")
    assert busy_reader.readline().startswith(b"250")
    started = time.monotonic()
    server.proc.send_signal(signal.SIGINT)
    assert reader.readline().startswith(b"421 4.3.2")  # at once, and told why
    assert time.monotonic() - started < 5
    server.proc.send_signal(signal.SIGINT)  # the transaction would get the drain: not now
    assert server.proc.wait(10) != 0
    assert time.monotonic() - started < 10
    for sock in (idle, busy):
        sock.close()


def test_serving_mistakes_are_one_line_and_exit_one(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    assert admin(db, "lists", "create", "team@example.org").returncode == 0
    for args, says in (
        (("--templates", str(tmp_path / "nowhere")), "--templates"),
        (("--log-level", "chatty"), "--log-level must be one of debug, info, warning, error"),
        (("--dns", "notahost"), "--dns wants the resolver's IP address"),
    ):
        code, err = finish(start(db, "--port", "0", *args))
        assert code in {1, 2} and says in err and "Traceback" not in err, (args, err)
        assert "internal error" not in err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "message").mkdir()
    (broken / "message" / "footer.txt.j2").write_text("{% if %}")
    code, err = finish(start(db, "--port", "0", "--templates", str(broken)))
    assert code == 1 and "--templates" in err and "internal error" not in err, err
    gone = admin(db, "archive", "export", "team@example.org", str(tmp_path / "no" / "x.mbox"))
    assert gone.returncode == 1 and "cannot write" in gone.stderr and "internal" not in gone.stderr


def test_one_server_per_sqlite_file(tmp_path: Path) -> None:
    """Two servers on one SQLite file would reset each other's claims: the second is refused,
    and so is a migration that would miss what the first stores meanwhile."""
    db = tmp_path / "m.db"
    assert admin(db, "lists", "create", "team@example.org").returncode == 0
    if dbutil.POSTGRES:
        pytest.skip("PostgreSQL runs several servers on one database by design")
    first = Server(db)
    try:
        code, err = finish(start(db, "--port", "0"))
        assert code == 1 and f"(pid {first.proc.pid})" in err, err
        moved = admin(db, "db", "migrate", "--to", str(tmp_path / "copy.db"))
        assert moved.returncode == 1 and "stop it first" in moved.stderr
    finally:
        first.stop()


def test_the_demo_serves_its_archive(tmp_path: Path) -> None:
    """`make serve`: the demo list's first thread, public at the URL the demo prints."""
    db = tmp_path / "demo.db"
    port = _free_port()
    made = admin(db, "demo", "--web-url", f"http://127.0.0.1:{port}")
    assert made.returncode == 0 and f"http://127.0.0.1:{port}/lists/" in made.stdout
    server = Server(db, "--http-port", str(port))
    try:
        base = f"http://127.0.0.1:{port}/lists/managers@example.org/"
        listing = urllib.request.urlopen(base, timeout=10).read().decode()
        assert "How do you run your one-on-ones?" in listing
        [thread] = re.findall(r'href="(/lists/managers@example.org/thread/\d+)"', listing)
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}{thread}", timeout=10).read()
        assert b"BariTony" in page and b"Training Badge" in page
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_ctrl_c_in_a_terminal_stops_the_workers_without_a_traceback(tmp_path: Path) -> None:
    """A terminal's Ctrl-C signals the whole foreground process group, the sandbox's worker
    processes too: they leave quietly (the server stops them), no KeyboardInterrupt on the
    admin's screen."""
    db = tmp_path / "demo.db"
    port = _free_port()
    assert admin(db, "demo", "--web-url", f"http://127.0.0.1:{port}").returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "maillist", "--db", dbutil.location(db), "serve", "--port", "0",
         "--http-port", str(port), "--dns", default_dns(), "--outbox", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(), cwd=tmp_path,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        while b"SMTP server listening" not in proc.stdout.readline():
            assert proc.poll() is None
        base = f"http://127.0.0.1:{port}/lists/managers@example.org/"
        listing = urllib.request.urlopen(base, timeout=10).read().decode()
        [thread] = re.findall(r'href="(/lists/managers@example.org/thread/\d+)"', listing)
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}{thread}", timeout=10).read()
        assert b"BariTony" in page  # bodies rendered by the display sandbox's workers
        os.killpg(proc.pid, signal.SIGINT)
        code, err = finish(proc)
        assert code == 0, err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

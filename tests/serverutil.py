"""Run `maillist serve` as a real process and talk to it over real sockets, with timeouts everywhere."""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import resource
import select
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import dbutil
from dnsserver import DnsServer
from sink import Received, RunningSink, Sink

_DNS: list[DnsServer] = []


def default_dns() -> str:
    """A loopback DNS server (empty zone: NXDOMAIN) for servers a test starts without `--dns`:
    their DKIM and DMARC lookups never leave the machine. One per test process."""
    if not _DNS:
        server = DnsServer()
        server.start()
        atexit.register(server.stop)
        _DNS.append(server)
    address: str = _DNS[0].address
    return address


def _limit_files(count: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))


START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
IO_TIMEOUT = 10.0


class Server:
    def __init__(
        self, db: Path | str, *args: str, log: Path | None = None, nofile: int | None = None
    ) -> None:
        """`db` a SQLite file (or what dbutil maps it to), or a PostgreSQL URL (then `log`);
        `nofile` the process's open-file limit, soft and hard (as a service manager sets it)."""
        self.db = db
        self.log = log or Path(db).with_suffix(".log")
        self.http_port: int | None = None
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILLIST_")}
        self._log_handle = self.log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "maillist",
                "--db",
                dbutil.location(db),
                "serve",
                "--port",
                "0",
                *(() if "--relay" in args else ("--outbox", str(Path(db).parent / "outbox"))),
                *(() if "--dns" in args else ("--dns", default_dns())),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=self._log_handle,
            env=env,
            preexec_fn=None if nofile is None else partial(_limit_files, nofile),
        )
        self.port = self._wait_for_port()

    def _wait_for_port(self) -> int:
        """Read stdout straight from the pipe (os.read, not a buffered readline, which can hold a
        second line where select() no longer sees it) until the SMTP/LMTP port is announced."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + START_TIMEOUT
        pending = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    http = re.search(rb"http listening on [\d.]+:(\d+)", line)
                    if http:
                        self.http_port = int(http.group(1))
                        continue
                    match = re.search(rb"listening on [\d.]+:(\d+)", line)
                    if match:
                        return int(match.group(1))
            elif self.proc.poll() is not None:
                break
        self.kill()
        raise AssertionError(f"server did not start: {pending!r} {self.log.read_text()[-2000:]}")

    def stop(self) -> int:
        """SIGTERM by PID, then wait (bounded); SIGKILL if it does not go."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log_handle.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT)
        self._log_handle.close()

    def rows(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        conn = dbutil.connect(self.db)
        try:
            return list(conn.execute(sql, args).fetchall())
        finally:
            conn.close()


@contextmanager
def running(db: Path, *args: str) -> Iterator[Server]:
    server = Server(db, *args)
    try:
        yield server
    finally:
        server.stop()


class Raw:
    """A raw SMTP/LMTP conversation: bytes out exactly as given, reply lines in."""

    def __init__(self, port: int, source: str = "") -> None:
        """`source`: another loopback address to connect from (127.0.0.2 ...): another client."""
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=IO_TIMEOUT, source_address=(source, 0) if source else None
        )
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed by server; pending {self.buffer!r}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def reply(self) -> bytes:
        """One full (possibly multi-line) reply."""
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3:4] == b"-":
            lines.append(self.line())
        return b"\n".join(lines)

    def cmd(self, data: bytes) -> bytes:
        self.send(data + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return True

    def close(self) -> None:
        self.sock.close()


def message(
    sender: str = "anne@example.org",
    subject: str = "Hello",
    message_id: str | None = "m1@example.org",
    extra: str = "",
    body: str = "Hi there.",
    to: str = "team@example.org",
) -> bytes:
    headers = [f"From: {sender}", f"To: {to}", f"Subject: {subject}"]
    if message_id:
        headers.append(f"Message-ID: <{message_id}>")
    headers.append("Date: Tue, 24 Nov 2026 10:00:00 +0000")
    text = (
        "\r\n".join(headers) + "\r\n" + (extra + "\r\n" if extra else "") + "\r\n" + body + "\r\n"
    )
    return text.encode()


def relayed(
    db: Path,
    sender: str,
    recipients: list[str],
    raw: bytes,
    until: Callable[[Sink], bool],
    *server_args: str,
) -> list[Received]:
    """Serve `db` relaying to a recording sink, send one message, wait until `until(sink)`, stop
    the server (it must exit 0: nothing it started keeps it alive) and return what the sink got."""
    with RunningSink(Sink()) as sink:
        server = Server(db, "--relay", f"127.0.0.1:{sink.port}", *server_args)
        try:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=IO_TIMEOUT) as client:
                client.sendmail(sender, recipients, raw)
            sink.wait(until)
        finally:
            assert server.stop() == 0
        return list(sink.received)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll `check` until it holds (bounded): for states only the server's own process changes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Prober:
    """Another client, while something else is in flight: every `every` seconds it connects,
    reads the greeting and gets a NOOP answered, and records how long that took. A server
    whose event loop is frozen answers late, and the longest wait says by how much."""

    def __init__(self, port: int, every: float = 0.1, timeout: float = 60.0) -> None:
        self.port = port
        self.every = every
        self.timeout = timeout
        self.waits: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout) as s:
                    s.settimeout(self.timeout)
                    reader = s.makefile("rb")
                    reader.readline()  # 220
                    s.sendall(b"NOOP\r\n")
                    reader.readline()  # 250
                    s.sendall(b"QUIT\r\n")
                    reader.readline()
            except OSError:
                pass
            self.waits.append(time.monotonic() - started)
            self._stop.wait(self.every)

    @property
    def longest(self) -> float:
        return max(self.waits, default=0.0)


class LoopServer:
    """A TCP server on loopback with an asyncio loop in a thread of its own (a fake relay, a
    proxy): subclasses set what they need, then call this __init__, and give `_session`."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._session, "127.0.0.1", 0)
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        ready.set()
        self._loop.run_forever()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

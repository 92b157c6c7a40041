"""The archive's port faces strangers too: slow clients, floods, and what they cost SMTP."""

from __future__ import annotations

import resource
import selectors
import socket
import time
from pathlib import Path

import httpx

from serverutil import Server
from test_budgets import seed

SLOW = 1100  # half-sent requests: more than systemd's default 1,024 descriptors


def half_sent(count: int) -> list[socket.socket]:
    """`count` connections from many loopback addresses (127.0.0.2 ...), each with a request
    head that never ends."""
    held = []
    for n in range(count):
        sock = socket.socket()
        sock.settimeout(2)
        try:
            sock.bind((f"127.0.{n // 200}.{2 + n % 200}", 0))
            sock.connect(("127.0.0.1", PORT[0]))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: lists.example.org\r\n")
        except OSError:
            sock.close()
            continue
        held.append(sock)
    return held


PORT = [0]


def test_slow_http_clients_cannot_take_smtp_down(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < SLOW + 200:  # this test process holds the attacker's sockets itself
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * SLOW), hard))
    db = tmp_path / "slow.db"
    seed(db)
    server = Server(db, "--http-port", "0", nofile=1024)
    try:
        assert server.http_port is not None
        PORT[0] = server.http_port
        started = time.monotonic()
        held = half_sent(SLOW)
        try:
            greeting = time.monotonic()
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as smtp:
                assert smtp.makefile("rb").readline().startswith(b"220")
            greeting = time.monotonic() - greeting
            page = httpx.get(f"http://127.0.0.1:{server.http_port}/healthz", timeout=5)
            assert page.status_code == 200  # a reader (or the proxy in front) still gets in
            # Each is closed, made room for or past its 10 s for a request head, never held.
            waiting = selectors.DefaultSelector()  # epoll: select() stops at descriptor 1,024
            for sock in held:
                waiting.register(sock, selectors.EVENT_READ)
            while waiting.get_map() and time.monotonic() - started < 30:
                for key, _ in waiting.select(1.0):
                    ready = key.fileobj
                    assert isinstance(ready, socket.socket)
                    try:
                        data = ready.recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        waiting.unregister(ready)
            left = len(waiting.get_map())
            assert not left, f"{left} half-sent requests were never closed"
        finally:
            for sock in held:
                sock.close()
        assert greeting < 1.0, f"SMTP greeting took {greeting:.1f} s"
    finally:
        server.stop()
    log = server.log.read_text()
    assert log.count("Too many open files") < 50 and len(log) < 200_000

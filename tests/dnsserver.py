"""A DNS server on loopback that tests publish TXT records on (dnslib): DKIM keys, DMARC
policies. Every other name is NXDOMAIN at once; names listed in `silent` never get an answer
(a resolver timeout). Run as a script it serves an empty zone and prints its port (smoke test)."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dnslib import QTYPE, RCODE, RR, TXT  # type: ignore[import-untyped]
from dnslib.server import BaseResolver, DNSHandler, DNSServer  # type: ignore[import-untyped]

from sink import free_port


def txt_strings(value: str) -> list[bytes]:
    data = value.encode()
    return [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]


SILENT_SECONDS = 8.0


class Zone(BaseResolver):  # type: ignore[misc]
    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.silent: set[str] = set()
        self.asked: list[str] = []
        self.lock = threading.Lock()

    def publish(self, name: str, *values: str) -> None:
        with self.lock:
            self.records[name.lower().rstrip(".")] = list(values)

    def resolve(self, request: Any, handler: Any) -> Any:
        name = str(request.q.qname).lower().rstrip(".")
        with self.lock:
            self.asked.append(name)
            silent = name in self.silent
            values = list(self.records.get(name, []))
        reply = request.reply()
        if silent:  # answered long after any resolver gave up (this server thread only waits)
            time.sleep(SILENT_SECONDS)
        if not values:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if request.q.qtype == QTYPE.TXT:
            for value in values:
                reply.add_answer(
                    RR(request.q.qname, QTYPE.TXT, rdata=TXT(txt_strings(value)), ttl=300)
                )
        return reply


class _Quiet:
    def log_recv(self, *a: Any) -> None: ...
    def log_send(self, *a: Any) -> None: ...
    def log_request(self, *a: Any) -> None: ...
    def log_reply(self, *a: Any) -> None: ...
    def log_truncated(self, *a: Any) -> None: ...
    def log_error(self, *a: Any) -> None: ...
    def log_data(self, *a: Any) -> None: ...


class _Handler(DNSHandler):  # type: ignore[misc]
    def handle(self) -> None:
        with contextlib.suppress(OSError):  # a late answer (a `silent` name) after the stop
            super().handle()


class DnsServer:
    def __init__(self) -> None:
        self.zone = Zone()
        self.port = free_port()
        self._server = DNSServer(
            self.zone, port=self.port, address="127.0.0.1", logger=_Quiet(), handler=_Handler
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server.start_thread()

    def stop(self) -> None:
        self._server.stop()
        self._server.server.server_close()


@contextmanager
def dns_server() -> Iterator[DnsServer]:
    server = DnsServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":  # the smoke test's resolver: an empty zone, stopped by its PID
    with dns_server() as running:
        print(running.port, flush=True)
        while True:
            time.sleep(3600)
    sys.exit(0)

"""A DNS server on loopback that answers every question NXDOMAIN, standard library only: the
resolver for servers started where no zone is needed (the installed-package smoke test, the
benchmarks), so that their DKIM and DMARC lookups never leave the machine."""

from __future__ import annotations

import socket
import threading


def nxdomain_resolver() -> int:
    """A DNS server on loopback that answers every question NXDOMAIN (the smoke test's world has
    no DMARC records, and no test asks the internet); returns its UDP port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def answer() -> None:
        while True:
            query, peer = sock.recvfrom(4096)
            if len(query) < 12:
                continue
            end = query.find(b"\x00", 12) + 5  # the question: name, type, class
            flags = bytes([0x80 | (query[2] & 0x01), 0x83])  # response, RD copied, RA, NXDOMAIN
            sock.sendto(
                query[:2] + flags + b"\x00\x01\x00\x00\x00\x00\x00\x00" + query[12:end], peer
            )

    threading.Thread(target=answer, daemon=True).start()
    return int(sock.getsockname()[1])

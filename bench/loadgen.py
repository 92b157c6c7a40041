"""A lean SMTP load generator: C concurrent connections, each sending its share of N messages
with unique Message-IDs, one transaction after another, waiting for each reply (no pipelining,
as smtp-source does by default). Returns wall seconds and the count of 250s after DATA."""

from __future__ import annotations

import asyncio
import time


async def _client(port: int, rcpt: str, ids: range, tag: str, size: int) -> int:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)

    async def reply() -> bytes:
        while True:
            line = await asyncio.wait_for(reader.readline(), 30)
            if not line:
                raise ConnectionError("server closed the connection")
            if line[3:4] != b"-":
                return line

    await reply()
    writer.write(b"EHLO loadgen\r\n")
    await reply()
    body = (b"x" * 70 + b"\r\n") * max(1, size // 72)
    ok = 0
    for n in ids:
        msg = (
            (
                f"From: Load Generator <load{n % 50}@example.org>\r\nTo: {rcpt}\r\n"
                f"Subject: load test {n}\r\nMessage-ID: <{tag}-{n}@loadgen.example>\r\n"
                f"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n\r\n"
            ).encode()
            + body
            + b".\r\n"
        )
        writer.write(f"MAIL FROM:<load{n % 50}@example.org>\r\n".encode())
        await reply()
        writer.write(f"RCPT TO:<{rcpt}>\r\n".encode())
        await reply()
        writer.write(b"DATA\r\n")
        await reply()
        writer.write(msg)
        if (await reply()).startswith(b"250"):
            ok += 1
    writer.write(b"QUIT\r\n")
    await reply()
    writer.close()
    return ok


async def run(
    port: int, rcpt: str, messages: int, clients: int, tag: str, size: int = 1000
) -> tuple[float, int]:
    share = [range(i, messages, clients) for i in range(clients)]
    start = time.perf_counter()
    results = await asyncio.gather(*(_client(port, rcpt, ids, tag, size) for ids in share))
    return time.perf_counter() - start, sum(results)

"""The ceiling for bench/ingest.py: a bare aiosmtpd server on one loop that stores nothing.

    python bench/bare_smtp.py PORT_FILE
Prints nothing; writes its port to PORT_FILE once listening; stops on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class Sink:
    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        return "250 2.0.0 OK"


async def main(port_file: Path) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Sink(), hostname="bench"), "127.0.0.1", 0)
    port_file.write_text(str(server.sockets[0].getsockname()[1]))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))

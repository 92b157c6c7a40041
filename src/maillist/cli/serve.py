"""`maillist serve`: the one place that wires the SMTP/LMTP server and the store onto one loop."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from typing import Annotated

import typer

from maillist.cli.runtime import config
from maillist.config import Config
from maillist.mailparse import Limits
from maillist.services.directory import ListDirectory
from maillist.services.ingest import Ingestor
from maillist.services.store import Writer, open_store
from maillist.smtp.handler import Handler
from maillist.smtp.server import ServerSettings, listen

log = logging.getLogger("maillist.serve")


async def serve(cfg: Config, settings: ServerSettings, limits: Limits) -> None:
    db = await open_store(cfg.db)  # creates or upgrades the schema before the writer opens it
    writer = Writer(cfg.db)
    await writer.start()
    ingestor = Ingestor(writer)
    ingestor.start()
    directory = ListDirectory(db)
    await directory.refresh()
    listener = await listen(Handler(directory, ingestor, settings, limits), settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    protocol = "LMTP" if settings.lmtp else "SMTP"
    log.info("%s listening on %s:%d, database %s", protocol, settings.host, listener.port, cfg.db)
    print(f"maillist {protocol} server listening on {settings.host}:{listener.port}", flush=True)
    try:
        await stop.wait()
        log.info("stopping: finishing %d open session(s)", len(listener.gate.live))
    finally:
        await listener.stop()
        await ingestor.stop()
        await writer.close()
        await db.close()
        log.info("stopped")


def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0 picks a free one).")] = 8025,
    lmtp: Annotated[
        bool, typer.Option("--lmtp", help="Speak LMTP (RFC 2033), as Postfix expects.")
    ] = False,
    hostname: Annotated[
        str | None, typer.Option(help="Name in the greeting (default: this host's FQDN).")
    ] = None,
    max_sessions: Annotated[int, typer.Option(min=1, help="Concurrent sessions before 421.")] = 100,
    max_recipients: Annotated[int, typer.Option(min=1, help="RCPTs per message before 452.")] = 50,
    timeout: Annotated[
        float, typer.Option(min=1, help="Idle seconds before a session is closed.")
    ] = 60.0,
    session_seconds: Annotated[
        float, typer.Option(min=1, help="Longest a session may last.")
    ] = 600.0,
    parse_seconds: Annotated[
        float, typer.Option(min=0, help="Time budget for parsing one message before 554.")
    ] = 2.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Receive mail for the lists over SMTP (or LMTP), store it durably, thread it and decide its fate."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
    settings = ServerSettings(
        host=host,
        port=port,
        lmtp=lmtp,
        hostname=hostname or socket.getfqdn(),
        max_sessions=max_sessions,
        max_recipients=max_recipients,
        idle_timeout=timeout,
        session_seconds=session_seconds,
    )
    try:
        asyncio.run(serve(config(ctx), settings, Limits(parse_seconds=parse_seconds)))
    except OSError as exc:
        raise typer.BadParameter(f"cannot listen on {host}:{port}: {exc.strerror}") from None

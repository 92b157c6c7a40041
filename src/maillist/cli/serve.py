"""`maillist serve`: the one place that wires the SMTP/LMTP server and the store onto one loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import typer
import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

from maillist import bodies
from maillist.cli.runtime import config
from maillist.config import LEASE_SECONDS, Config, describe
from maillist.db.store import SERVER_CACHE_KIB
from maillist.delivery.relay import MaildirOutbox, Relay, RelaySettings, SmtpRelay
from maillist.delivery.worker import DeliveryWorkers
from maillist.errors import BadInput, MaillistError
from maillist.logfilter import Repeats, SafeFormatter
from maillist.mail.dmarc import OrgDomains
from maillist.mail.mailparse import Limits
from maillist.metrics import Metrics
from maillist.services import search
from maillist.services.authentication import Authenticator
from maillist.services.database import open_site, serving
from maillist.services.directory import ListDirectory
from maillist.services.ingest import Ingestor
from maillist.services.notify import NoticeLimits, Notifier
from maillist.services.requests import Requests
from maillist.services.resolver import Resolver, parse_server
from maillist.services.sandbox import Sandbox
from maillist.smtp.handler import Handler
from maillist.smtp.server import ListenError, ServerSettings, listen
from maillist.smtp.tls import Certificates, TlsError
from maillist.templating import Templates
from maillist.web import guard as http_guard
from maillist.web.app import build as build_web

log = logging.getLogger("maillist.serve")


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    relay: RelaySettings | None
    outbox: Path
    connections: int = 4
    give_up_after: float = 5 * 86400.0
    templates: Path | None = None
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    drain_seconds: float = 30.0
    parse_workers: int = 2
    notice_limits: NoticeLimits = field(default_factory=NoticeLimits)
    auth: AuthSettings = field(default_factory=lambda: AuthSettings())
    lease: float = LEASE_SECONDS


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Checking posts on receipt: where DNS questions go, and whose results count."""

    dns: str = ""  # HOST:PORT of the resolver; '' for the system's
    trusted_authserv: str = ""  # the authserv-id of the MTA in front whose results count
    trusted_arc: tuple[str, ...] = ()  # ARC sealers (d=) whose chains count as proof


HTTP_BACKLOG = 128


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn on our loop: signals stay ours (SIGTERM drains SMTP sessions first).

    Overrides uvicorn.Server.capture_signals (public name, not documented; uvicorn has no setting
    to leave signals alone). Server.serve wraps all of serving in it and, left alone, it replaces
    our loop's SIGINT/SIGTERM handlers with signal.signal(), restores them at the end and
    re-raises any signal it caught. Tested with uvicorn 0.54.0 and pinned uvicorn>=0.29,<0.55 in
    pyproject.toml; tests/test_upstream_guard.py fails if uvicorn stops calling it or takes the
    handlers some other way."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def start_http(
    app: Starlette, host: str, port: int
) -> tuple[_EmbeddedUvicorn, asyncio.Task[None], int]:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # Listening before "http listening" is printed: a client that connects at once waits in
        # the backlog for uvicorn instead of being refused.
        sock.listen(HTTP_BACKLOG)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port} (http): {exc.strerror}") from None
    guard = http_guard.Guard(http_guard.Limits().fitted())
    # backlog: asyncio accepts up to this many connections in one go, each a descriptor, before
    # the guard sees any of them (uvicorn's default, 2,048, is twice systemd's descriptor limit).
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", access_log=False, backlog=HTTP_BACKLOG,
        http=guard.protocol(H11Protocol),
    )  # fmt: skip
    server = _EmbeddedUvicorn(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="http")
    return server, task, int(sock.getsockname()[1])


async def serve(
    cfg: Config, settings: ServerSettings, limits: Limits, delivery: DeliverySettings
) -> None:
    """Start everything, serve until SIGINT/SIGTERM, then stop everything that was started.

    Every part is registered with one exit stack as soon as it exists, so a start-up failure (a
    port in use) and a stop both close what is open, in reverse order, each step even if an
    earlier one failed: no thread is left behind to keep the process alive."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():  # the second Ctrl-C: the admin does not want to wait
            log.warning("second interrupt: stopping at once (batches being sent go again later)")
            logging.shutdown()
            os._exit(1)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    if settings.tls is not None:  # a renewed certificate: new sessions get it, no restart
        loop.add_signal_handler(signal.SIGHUP, settings.tls.reload)
    drain = _Drain(delivery.drain_seconds)
    http_guard.raise_descriptor_limit()
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(serving(cfg.db))  # one server per SQLite file
        db = await open_site(cfg.db, create=True, cache_kib=SERVER_CACHE_KIB)
        stack.push_async_callback(_step("database", db.close))
        directory = ListDirectory(db)
        await directory.refresh()
        relay: Relay = (
            SmtpRelay(delivery.relay) if delivery.relay else MaildirOutbox(delivery.outbox)
        )
        metrics = Metrics()
        workers = DeliveryWorkers(
            db, directory, relay, Templates(delivery.templates),
            connections=delivery.connections, give_up_after=delivery.give_up_after, metrics=metrics,
            lease=delivery.lease,
        )  # fmt: skip
        stack.push_async_callback(_step("delivery", lambda: workers.stop(drain.left())))
        await workers.start()
        notifier = Notifier(Templates(delivery.templates), delivery.notice_limits)
        ingestor = Ingestor(db, on_accept=workers.notify, requests=Requests(notifier))
        stack.push_async_callback(_step("ingest", ingestor.stop))
        ingestor.start()
        parser = Sandbox("parse", delivery.parse_workers)
        stack.push_async_callback(_step("parsers", parser.close))
        authenticator = Authenticator(
            Resolver(delivery.auth.dns), OrgDomains(),
            trusted_authserv=delivery.auth.trusted_authserv, trusted_arc=delivery.auth.trusted_arc,
        )  # fmt: skip
        handler = Handler(directory, ingestor, settings, limits, parser, metrics, authenticator)
        listener = await listen(handler, settings)
        indexing = asyncio.create_task(search.backfill(db), name="search-backfill")
        stack.callback(indexing.cancel)
        stack.push_async_callback(_step("sessions", lambda: listener.stop(drain.left())))
        if delivery.http_port is not None:
            display = Sandbox("display", DISPLAY_WORKERS)
            stack.push_async_callback(_step("display", display.close))
            warming = display.warm(bodies.render, b"", "")  # the first page does not wait
            stack.callback(warming.cancel)
            web = build_web(db, metrics, Templates(delivery.templates), notifier, display)
            http = await start_http(web, delivery.http_host, delivery.http_port)
            stack.push_async_callback(_step("http", _stop_http, http))
            print(
                f"maillist http listening on {delivery.http_host}:{http[2]} "
                f"(the archive: http://{delivery.http_host}:{http[2]}/, one-click unsubscribe, "
                "/metrics)",
                flush=True,
            )
        target = (
            f"relay {delivery.relay.host}:{delivery.relay.port}"
            if delivery.relay
            else f"outbox {delivery.outbox}"
        )
        protocol = "LMTP" if settings.lmtp else "SMTP"
        log.info(
            "%s listening on %s:%d, database %s, delivering to %s",
            protocol, settings.host, listener.port, describe(cfg.db), target,
        )  # fmt: skip
        print(
            f"maillist {protocol} server listening on {settings.host}:{listener.port}", flush=True
        )
        # What start-up made (modules, templates, the list directory) lives as long as the
        # process: kept out of the collector's full passes, which otherwise walk it all and
        # hold the loop for tens of milliseconds while a big fan-out allocates (bench/latency.py).
        gc.collect()
        gc.freeze()
        await stop.wait()
        log.info("stopping: finishing %d open session(s)", len(listener.gate.live))
        drain.start()
        _watchdog(delivery.drain_seconds + STOP_MARGIN)
    log.info("stopped")


DISPLAY_WORKERS = 2  # processes rendering archive pages (services/archive.py)
STOP_MARGIN = 10.0  # seconds past the drain time before a stop that hangs is cut short


class _Drain:
    """One budget for the whole stop: sessions and senders share the drain time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._until: float | None = None

    def start(self) -> None:
        self._until = time.monotonic() + self.seconds

    def left(self) -> float:
        if self._until is None:  # stopping after a failed start: nothing to drain
            return 1.0
        return max(1.0, self._until - time.monotonic())


def _step(
    name: str, close: Callable[..., Awaitable[object]], *args: object
) -> Callable[[], Awaitable[None]]:
    """A shutdown step that logs its own failure instead of skipping the steps after it."""

    async def run() -> None:
        try:
            await close(*args)
        except Exception:
            log.exception("stopping %s failed; going on", name)

    return run


async def _stop_http(http: tuple[_EmbeddedUvicorn, asyncio.Task[None], int]) -> None:
    http[0].should_exit = True
    await http[1]


def _watchdog(seconds: float) -> None:
    """The last resort: whatever hangs in an orderly stop, the process ends `seconds` from now."""

    def expire() -> None:
        log.error("stop took longer than %.0f s: exiting now", seconds)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


LOG_LEVELS = ("debug", "info", "warning", "error")


def check_templates(directory: Path) -> None:
    """`--templates DIR` must be a directory whose templates all compile: a typo found at the
    first post would be a notice or a copy that cannot be made."""
    if not directory.is_dir():
        raise BadInput(f"--templates {directory}: no such directory")
    try:
        templates = Templates(directory)
    except Exception as exc:  # the footer, loaded at once, does not compile
        raise BadInput(f"--templates {directory}: {exc}") from None
    for name in templates.env.loader.list_templates() if templates.env.loader else []:
        if not (directory / name).is_file():
            continue
        try:
            templates.env.get_template(name)
        except Exception as exc:  # Jinja's syntax errors, unreadable files
            raise BadInput(f"--templates {directory}: {name} does not load: {exc}") from None


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What `maillist serve` was given (cli/servecmd.py reads it)."""

    host: str
    port: int
    lmtp: bool
    hostname: str | None
    max_sessions: int
    max_sessions_per_client: int
    max_recipients: int
    timeout: float
    session_seconds: float
    parse_seconds: float
    parse_workers: int
    relay: str | None
    relay_starttls: bool
    relay_user: str
    outbox: Path
    connections: int
    give_up: float
    templates: Path | None
    http_port: int | None
    http_host: str
    lease: float
    drain_seconds: float
    notices_per_address: int
    notices_per_client: int
    dns: str
    trusted_authserv: str
    trusted_arc: list[str] | None
    tls_cert: Path | None
    tls_key: Path | None
    log_level: str


def start(ctx: typer.Context, options: ServeOptions) -> None:
    """`maillist serve` after its options were read (cli/servecmd.py): check them, build the
    settings, serve until stopped."""
    o = options
    if o.log_level.lower() not in LOG_LEVELS:
        raise typer.BadParameter(
            f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {o.log_level!r}"
        )
    if o.templates is not None:
        check_templates(o.templates)
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(Repeats())
    logging.basicConfig(
        level=getattr(logging, o.log_level.upper(), logging.INFO), handlers=[handler]
    )
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command chatter
    if (o.tls_cert is None) != (o.tls_key is None):
        raise typer.BadParameter("--tls-cert and --tls-key go together")
    certificates = None
    if o.tls_cert is not None and o.tls_key is not None:
        try:
            certificates = Certificates(o.tls_cert, o.tls_key)
        except TlsError as exc:
            raise typer.BadParameter(str(exc)) from None
    settings = ServerSettings(
        tls=certificates,
        host=o.host,
        port=o.port,
        lmtp=o.lmtp,
        hostname=o.hostname or socket.getfqdn(),
        max_sessions=o.max_sessions,
        max_sessions_per_client=o.max_sessions_per_client,
        max_recipients=o.max_recipients,
        idle_timeout=o.timeout,
        session_seconds=o.session_seconds,
    )
    relay_settings = None
    if o.relay:
        relay_host, _, relay_port = o.relay.rpartition(":")
        if not relay_host or not relay_port.isdigit():
            raise typer.BadParameter(f"--o.relay must be HOST:PORT, not {o.relay!r}")
        relay_settings = RelaySettings(
            relay_host.strip("[]"), int(relay_port), starttls=o.relay_starttls, username=o.relay_user,
            password=os.environ.get("MAILLIST_RELAY_PASSWORD", ""),
        )  # fmt: skip
    if o.dns:
        try:
            parse_server(o.dns)
        except MaillistError as exc:
            raise typer.BadParameter(str(exc)) from None
    delivery = DeliverySettings(
        relay_settings, o.outbox, o.connections, o.give_up * 3600.0, o.templates, o.http_host, o.http_port,
        o.drain_seconds, o.parse_workers, NoticeLimits(o.notices_per_address, o.notices_per_client),
        AuthSettings(o.dns, o.trusted_authserv, tuple(o.trusted_arc or ())), o.lease,
    )  # fmt: skip
    asyncio.run(serve(config(ctx), settings, Limits(parse_seconds=o.parse_seconds), delivery))

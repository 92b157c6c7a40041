"""The listening socket: aiosmtpd's SMTP/LMTP protocol with session caps, on the caller's loop.

Not aiosmtpd's threaded Controller: the server shares one asyncio loop with the store and (later)
the delivery workers, and stops by draining its sessions.

aiosmtpd is used through its documented API (handler hooks, `smtp_*` commands, `push`,
`_create_envelope`, `session`/`envelope`/`event_handler`/`data_size_limit`/`line_length_limit`)
except in three places, each kept for a measured reason given where it is used, and each guarded by
tests/test_upstream_guard.py, which fails when aiosmtpd changes under it. pyproject.toml pins
aiosmtpd to the versions this was tested with (1.4.6; `<1.5`).

- `_reader` (smtp_DATA): the only way to read DATA other than aiosmtpd's own per-line reader.
- `_getaddr` (overridden): the MAIL/RCPT path parser, given a fast path.
- `__dir__` (overridden): what aiosmtpd's constructor scans for `smtp_*` and `auth_*` methods.

Undocumented behaviour relied on: smtp_DATA's checks and replies, which ours repeats (data.py
reads the data the way aiosmtpd's does), and the reply texts `_REWRITE` matches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, syntax

from maillist import replies
from maillist.errors import MaillistError
from maillist.smtp.data import DataState, read_data
from maillist.smtp.tls import Certificates

log = logging.getLogger("maillist.smtp")

# aiosmtpd's own replies, given the enhanced status codes (RFC 3463) that our other replies carry.
# The keys are aiosmtpd 1.4.6's exact texts (undocumented): a key that no longer matches silently
# stops rewriting, so tests/test_upstream_guard.py checks each is still a literal in aiosmtpd.smtp.
_REWRITE = {
    "552 Error: Too much mail data": "552 5.3.4 Message too big for this list",
    "552 Error: message size exceeds fixed maximum message size": "552 5.3.4 Message too big",
    "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.2 Line too long (limit 1000 octets)",
    "500 Command line too long": "500 5.5.2 Command line too long",
}


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_PATH = re.compile(
    rf"^<({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    rf"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)>((?: .*)?)$",
    re.ASCII,
)


class ListenError(MaillistError):
    pass


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8025
    lmtp: bool = False
    hostname: str = "localhost"
    max_sessions: int = 100
    max_sessions_per_client: int = 20  # Postfix's LMTP client opens up to 20 by default
    max_recipients: int = 50
    idle_timeout: float = 60.0
    session_seconds: float = 600.0
    default_max_size: int = 10 * 1024 * 1024
    tls: Certificates | None = None  # STARTTLS for direct use as an MX (smtp/tls.py)


class SessionGate:
    """Counts live sessions, in all and per client address; refuses past the per-client cap;
    lets shutdown wait for them to end.

    Past the total, a newcomer from a client that holds fewer sessions than the biggest holder
    takes the place of that holder's oldest session that is not in the middle of a message: a
    few addresses that hold every slot cannot keep new clients out."""

    def __init__(self, limit: int, per_client: int) -> None:
        self.limit = limit
        self.per_client = per_client
        self.live: set[asyncio.Protocol] = set()
        self._clients: dict[str, list[_Limited]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.stopping = False  # the server is stopping: no new transactions

    def full(self) -> bool:
        """No room even to look at the newcomer (the burst allowance is used up too)."""
        return len(self.live) >= self.limit + OVERFLOW

    def over(self) -> bool:
        return len(self.live) > self.limit

    def enter(self, protocol: asyncio.Protocol) -> None:
        self.live.add(protocol)
        self._idle.clear()

    def admit_client(self, client: str, session: _Limited) -> bool:
        """Count one more session from `client`, unless it already has its share."""
        held = self._clients.setdefault(client, [])
        if len(held) >= self.per_client:
            if not held:
                del self._clients[client]
            return False
        held.append(session)
        return True

    def room_for(self, client: str) -> _Limited | None:
        """The session to close so `client` (already counted) may have one: the oldest idle
        session of the client holding the most, if that client holds more than `client`."""
        mine = len(self._clients.get(client, ()))
        biggest = max(self._clients.items(), key=lambda item: len(item[1]), default=None)
        if biggest is None or biggest[0] == client or len(biggest[1]) <= mine:
            return None
        return next((s for s in biggest[1] if not s.busy), None)

    def leave_client(self, client: str, session: _Limited) -> None:
        held = self._clients.get(client)
        if held is None:
            return
        with contextlib.suppress(ValueError):
            held.remove(session)
        if not held:
            del self._clients[client]

    def leave(self, protocol: asyncio.Protocol) -> None:
        self.live.discard(protocol)
        if not self.live:
            self._idle.set()

    async def drained(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


OVERFLOW = 16  # connections looked at past the cap, to see whether one may take a place


class _Limited:
    """What our SMTP and LMTP protocols add to aiosmtpd's: a per-client session cap, an idle
    timeout that only real work resets, a session deadline, DATA read into one bounded buffer,
    and our replies.

    aiosmtpd's own idle timer is reset by any valid command, NOOP and RSET included, so a client
    could hold a session slot for its whole lifetime by sending NOOP. Here only progress
    (the first HELO/EHLO, MAIL, RCPT, DATA and the data itself) resets the idle clock; aiosmtpd's
    timer is given the session deadline and never fires first. And a session is judged by what
    it achieves: one that completes no message in two idle periods (a MAIL every 50 s keeps
    the idle clock happy) is closed too, unless it is in the middle of sending one."""

    gate: SessionGate
    settings: ServerSettings
    session_max_size: int
    _deadline: asyncio.TimerHandle | None
    transport: Any
    envelope: Any  # aiosmtpd's (documented), replaced after DATA as aiosmtpd does

    def __init__(self, handler: Any, gate: SessionGate, settings: ServerSettings) -> None:
        self.gate = gate
        self.settings = settings
        size = getattr(handler, "size_limit", None)
        self.session_max_size = size() if size is not None else settings.default_max_size
        self._deadline = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._client: str | None = None
        self._greeted = False
        self.started = time.monotonic()
        self._progress_at = self.started
        self._achieved_at = self.started  # the last completed message (or the connection)
        self.busy = False  # in DATA: never the one closed to make room
        super().__init__(  # type: ignore[call-arg]  # SMTP or LMTP, by the subclass's bases
            handler,
            data_size_limit=self.session_max_size,
            hostname=settings.hostname,
            ident="maillist",
            timeout=settings.session_seconds,
            enable_SMTPUTF8=True,
            tls_context=settings.tls.context if settings.tls is not None else None,
            # No submission service: no AUTH mechanism is offered, none is accepted.
            auth_exclude_mechanism=("LOGIN", "PLAIN"),
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        assert isinstance(transport, asyncio.WriteTransport)
        if not self.gate.admit_client(client, self):
            log.warning(
                "client %s has %d sessions: refusing one more", client, self.gate.per_client
            )
            transport.write(f"{replies.TOO_MANY_FROM_CLIENT()}\r\n".encode())
            transport.close()
            return  # aiosmtpd never starts for this connection
        self._client = client
        if self.gate.over():
            victim = self.gate.room_for(client)
            if victim is None:
                log.warning("session cap %d reached: refusing %s", self.gate.limit, client)
                transport.write(f"{replies.TOO_MANY_CONNECTIONS()}\r\n".encode())
                transport.close()
                return  # counted until connection_lost, like any session
            victim.make_room()
        super().connection_made(transport)  # type: ignore[misc]
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self.settings.session_seconds, self._expire)
        self._idle_timer = loop.call_later(self.settings.idle_timeout, self._idle_check)

    def connection_lost(self, error: Exception | None) -> None:
        for timer in (self._deadline, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self.gate.leave(self)  # type: ignore[arg-type]
        if self._client is None:
            return  # refused in connection_made: aiosmtpd has nothing to clean up
        self.gate.leave_client(self._client, self)
        if self._deadline is None:
            return  # refused past the total cap: aiosmtpd never started
        super().connection_lost(error)  # type: ignore[misc]

    def in_transaction(self) -> bool:
        """Between MAIL and the end of DATA: what a stop lets finish."""
        envelope = getattr(self, "envelope", None)
        return self.busy or (envelope is not None and envelope.mail_from is not None)

    def shut(self) -> None:
        """The server is stopping: `421` and goodbye (an idle session at once, a busy one when
        its message is done)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(f"{replies.SHUTTING_DOWN()}\r\n".encode())
            self.transport.close()

    def make_room(self) -> None:
        """Closed so a client with fewer sessions may have one (SessionGate.room_for)."""
        log.info("closing an idle session of %s to make room for another client", self._client)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(f"{replies.MAKING_ROOM()}\r\n".encode())
            self.transport.close()

    def _progress(self) -> None:
        self._progress_at = time.monotonic()

    def _achieved(self) -> None:
        self._achieved_at = time.monotonic()

    def _idle_check(self) -> None:
        now = time.monotonic()
        idle = now - self._progress_at
        fruitless = now - self._achieved_at
        limit = self.settings.idle_timeout
        if idle < limit and (fruitless < 2 * limit or self.busy):
            wait = min(limit - idle, max(2 * limit - fruitless, 0.1))
            self._idle_timer = asyncio.get_running_loop().call_later(wait, self._idle_check)
            return
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(f"{replies.IDLE_TIMEOUT()}\r\n".encode())
            self.transport.close()

    async def push(self, status: Any) -> None:
        text = status.decode() if isinstance(status, bytes) else status
        await super().push(_REWRITE.get(text, text))  # type: ignore[misc]

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        if self.gate.stopping:
            self.shut()
            return
        self._progress()
        await super().smtp_MAIL(arg)  # type: ignore[misc]

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        self._progress()
        await super().smtp_RCPT(arg)  # type: ignore[misc]

    # Progress: what moves a mail transaction forward resets the idle clock (NOOP, RSET, HELP,
    # VRFY and repeated greetings do not).
    def _greeting(self) -> None:
        if not self._greeted:
            self._greeted = True
            self._progress()

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd 1.4.6's smtp_DATA (an overridable command, documented), reading the data into
        one bounded buffer instead of a bytearray per line (smtp/data.py says why). Its checks,
        their order and its replies are aiosmtpd's (undocumented: tests/test_upstream_guard.py
        compares the two and fingerprints aiosmtpd's). decode_data is never set here, so content
        and original_content are the same bytes, as in aiosmtpd."""
        self._progress()
        self.busy = True
        try:
            await self._data(arg)
        finally:
            self.busy = False

    async def _data(self, arg: str) -> None:
        if await self.check_helo_needed():  # type: ignore[attr-defined]
            return
        if await self.check_auth_needed("DATA"):  # type: ignore[attr-defined]
            return
        envelope = self.envelope
        if not envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        # PRIVATE aiosmtpd attribute `_reader` (the session's asyncio.StreamReader, set by
        # aiosmtpd's _cb_client_connected; tested with aiosmtpd 1.4.6). No public API gives the
        # data but aiosmtpd's own DATA reader, which keeps a bytearray per line: 10 MiB of empty
        # lines peaked at 851 MiB with it and at 48 MiB with data.py's (measured in one process,
        # tests/test_smtp_hostile.py holds the line at 120 MiB). Guarded by
        # tests/test_upstream_guard.py::test_reader_is_the_sessions_stream_reader.
        data = await read_data(
            self._reader,  # type: ignore[attr-defined]
            self.data_size_limit,  # type: ignore[attr-defined]
            self.line_length_limit,  # type: ignore[attr-defined]
            self._progress,
        )
        self._achieved()  # a message came whole (or too big): the session did something
        if data.state is not DataState.OK:
            self.envelope = self._create_envelope()  # type: ignore[attr-defined]
            await self.push(
                "500 Line too long (see RFC5321 4.5.3.1.6)"
                if data.state is DataState.TOO_LONG
                else "552 Error: Too much mail data"
            )
            return
        envelope.content = envelope.original_content = data.content
        # The handler's handle_DATA hook, called as aiosmtpd calls it (server, session, envelope).
        handler = self.event_handler  # type: ignore[attr-defined]
        hook = getattr(handler, "handle_DATA", None)
        status = "250 OK" if hook is None else await hook(self, self.session, envelope)  # type: ignore[attr-defined]
        # The post-DATA state is a new envelope: what aiosmtpd's private _set_post_data_state does,
        # through the documented _create_envelope (the guard checks it does nothing more).
        self.envelope = self._create_envelope()  # type: ignore[attr-defined]
        await self.push(status)
        if self.gate.stopping:  # its message is stored and answered: now it may go
            self.shut()

    def __dir__(self) -> list[str]:
        """aiosmtpd's __init__ runs inspect.getmembers(self) on every connection only to find
        auth_* and smtp_* methods; getattr on every attribute cost a tenth of a busy server's
        time. dir() of a session therefore lists just those names (computed once per class).

        Relies on undocumented aiosmtpd 1.4.6 behaviour: its constructor finds commands with
        dir(self) and AUTH mechanisms with inspect.getmembers(self), and nothing else it needs.
        Measured: constructing a session takes 38 us with this, 134 us without. Guarded by
        tests/test_upstream_guard.py::test_commands_are_found_through_dir (and the same commands
        and mechanisms as stock: tests/test_smtp_paths.py)."""
        cls = type(self)
        names: list[str] | None = cls.__dict__.get("_dir_cache")
        if names is None:
            names = [n for n in object.__dir__(self) if n.startswith(("auth_", "smtp_"))]
            cls._dir_cache = names  # type: ignore[attr-defined]
        return names

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """MAIL FROM / RCPT TO paths. The plain `<dot-atom@domain>` that nearly every client sends
        is matched by a strict pattern; anything else goes to aiosmtpd's full parser. (aiosmtpd
        defines a typing.Protocol class on every call here: a tenth of a busy server's time.)

        OVERRIDES A PRIVATE aiosmtpd METHOD (SMTP._getaddr(arg) -> (address, rest), aiosmtpd
        1.4.6). No public hook runs before it: handle_MAIL/handle_RCPT get the address it parsed,
        and replacing smtp_MAIL/smtp_RCPT would copy them whole. Measured: 56 us a path in
        aiosmtpd's, 0.9 us in ours. Its results equal aiosmtpd's (tests/test_smtp_paths.py);
        tests/test_upstream_guard.py::test_getaddr_is_the_one_we_override fails if it changes."""
        match = _SIMPLE_PATH.match(arg)
        if match is not None:
            address = match.group(1)
            limit = getattr(self, "local_part_limit", 0)
            if limit and len(address.rpartition("@")[0]) > limit:
                return None, None
            return address, match.group(2).lstrip()
        try:
            return super()._getaddr(arg)  # type: ignore[misc,no-any-return]
        except Exception:  # aiosmtpd's parser raises IndexError on some junk: a syntax error
            return None, None

    def _expire(self) -> None:
        """A slow client that keeps the idle timer happy still cannot hold a session forever."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(f"{replies.SESSION_TIMEOUT()}\r\n".encode())
            self.transport.close()


class ListSMTP(_Limited, SMTP):
    @syntax("HELO hostname")
    async def smtp_HELO(self, hostname: str) -> None:
        self._greeting()
        await super().smtp_HELO(hostname)

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        self._greeting()
        await super().smtp_EHLO(hostname)


class ListLMTP(_Limited, LMTP):
    @syntax("LHLO hostname")
    async def smtp_LHLO(self, arg: str) -> None:
        self._greeting()
        await super().smtp_LHLO(arg)


class _Refuse(asyncio.Protocol):
    """Past the session cap: one 421 line and goodbye, without touching the handler."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(f"{replies.TOO_MANY_CONNECTIONS()}\r\n".encode())
        transport.close()


class Listener:
    """A running server: its port, and an orderly stop that lets open sessions finish."""

    def __init__(self, server: asyncio.Server, gate: SessionGate) -> None:
        self._server = server
        self.gate = gate
        self.port: int = server.sockets[0].getsockname()[1]

    async def stop(self, grace: float = 30.0) -> None:
        """No new connections; idle sessions get `421` at once, sessions in a transaction when
        their message is stored; past `grace` every session goes."""
        self._server.close()
        self.gate.stopping = True
        for protocol in list(self.gate.live):
            if isinstance(protocol, _Limited) and not protocol.in_transaction():
                protocol.shut()
        if not await self.gate.drained(grace):
            log.warning("closing %d session(s) still open after %.0fs", len(self.gate.live), grace)
            for protocol in list(self.gate.live):
                transport = getattr(protocol, "transport", None)
                if transport is not None:
                    transport.close()
            await self.gate.drained(5.0)
        await self._server.wait_closed()


async def listen(handler: Any, settings: ServerSettings) -> Listener:
    gate = SessionGate(settings.max_sessions, settings.max_sessions_per_client)
    kind = ListLMTP if settings.lmtp else ListSMTP

    def factory() -> asyncio.Protocol:
        if gate.full():
            log.warning("session cap %d reached: refusing a connection", gate.limit)
            return _Refuse()
        protocol = kind(handler, gate, settings)
        gate.enter(protocol)  # counted at accept time, so a burst cannot overshoot the cap
        return protocol

    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(factory, host=settings.host, port=settings.port)
    except OSError as exc:
        raise ListenError(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
        ) from None
    return Listener(server, gate)

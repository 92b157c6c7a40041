"""Where copies go: an SMTP relay (aiosmtplib, connections reused) or a local Maildir outbox."""

from __future__ import annotations

import asyncio
import logging
import mailbox
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiosmtplib

from maillist.delivery.pipelining import PipelinedConnection, ReplyError
from maillist.services.deliveries import Result, classify, everyone

log = logging.getLogger("maillist.relay")
QUIT_SECONDS = 5.0


class Relay(Protocol):
    async def send(self, envelope_from: str, recipients: Sequence[str], data: bytes) -> Result: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RelaySettings:
    host: str
    port: int = 25
    starttls: bool = False
    username: str = ""
    password: str = ""
    timeout: float = 60.0


class SmtpRelay:
    """A pool of open connections to the relay, one per concurrent sender, reused across
    transactions and reopened after an error. Pipelined (delivery/pipelining.py) when the relay
    announces PIPELINING and no STARTTLS or AUTH is asked for; aiosmtplib otherwise."""

    def __init__(self, settings: RelaySettings, helo: str = "localhost") -> None:
        self.settings = settings
        self.helo = helo
        self._idle: list[aiosmtplib.SMTP | PipelinedConnection] = []
        self._pipelining: bool | None = (
            None if not (settings.starttls or settings.username) else False
        )

    async def _connect(self) -> aiosmtplib.SMTP | PipelinedConnection:
        s = self.settings
        if self._pipelining is not False:
            conn = await PipelinedConnection.open(s.host, s.port, self.helo, s.timeout)
            if conn is not None:
                self._pipelining = True
                return conn
            self._pipelining = False
            log.info(
                "relay %s:%d does not announce PIPELINING: one command at a time", s.host, s.port
            )
        return await self._connect_aiosmtplib()

    async def _connect_aiosmtplib(self) -> aiosmtplib.SMTP:
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.host, port=s.port, timeout=s.timeout, start_tls=s.starttls,
            use_tls=False, validate_certs=True,
        )  # fmt: skip
        await client.connect()
        if s.username:
            await client.login(s.username, s.password)
        return client

    async def send(self, envelope_from: str, recipients: Sequence[str], data: bytes) -> Result:
        try:
            client = self._idle.pop() if self._idle else await self._connect()
        except (aiosmtplib.SMTPException, ReplyError, OSError, TimeoutError) as exc:
            return everyone(recipients, f"relay unreachable: {_text(exc)}", temporary=True)
        if isinstance(client, PipelinedConnection):
            return await self._pipelined(client, envelope_from, recipients, data)
        keep = True
        try:
            refused, _ = await client.sendmail(envelope_from, list(recipients), data)
            return classify(recipients, {r: (e.code, e.message) for r, e in refused.items()})
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return classify(recipients, {e.recipient: (e.code, e.message) for e in exc.recipients})
        except aiosmtplib.SMTPResponseException as exc:  # MAIL FROM or DATA refused
            keep = False  # start the next transaction on a clean connection
            return everyone(recipients, f"{exc.code} {exc.message}", temporary=exc.code < 500)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            keep = False
            return everyone(recipients, f"relay error: {_text(exc)}", temporary=True)
        finally:
            if keep and client.is_connected:
                self._idle.append(client)
            else:
                client.close()

    async def _pipelined(
        self, conn: PipelinedConnection, envelope_from: str, recipients: Sequence[str], data: bytes
    ) -> Result:
        try:
            result = await conn.transaction(envelope_from, recipients, data)
        except (ReplyError, OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            conn.close()
            return everyone(recipients, f"relay error: {_text(exc)}", temporary=True)
        if conn.usable:
            self._idle.append(conn)
        return result

    async def close(self) -> None:
        """QUIT each pooled connection; one the relay already dropped is just closed."""
        while self._idle:
            client = self._idle.pop()
            try:
                await asyncio.wait_for(client.quit(), QUIT_SECONDS)
            except Exception:  # EOF, reset, timeout, a garbled reply: it is going away anyway
                client.close()


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class MaildirOutbox:
    """The embedded default with no relay: one file per recipient in a Maildir, as delivered."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._box = mailbox.Maildir(str(path), create=True)

    async def send(self, envelope_from: str, recipients: Sequence[str], data: bytes) -> Result:
        try:
            await asyncio.to_thread(self._write, envelope_from, recipients, data)
        except OSError as exc:
            return everyone(recipients, f"outbox not writable: {exc.strerror}", temporary=True)
        return Result(sent=tuple(recipients))

    def _write(self, envelope_from: str, recipients: Sequence[str], data: bytes) -> None:
        for rcpt in recipients:
            head = f"Return-Path: <{envelope_from}>\r\nDelivered-To: {rcpt}\r\n".encode()
            self._box.add(head + data)

    async def close(self) -> None:
        return None

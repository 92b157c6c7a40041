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

from maillist.services.deliveries import Result

log = logging.getLogger("maillist.relay")


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
    transactions and reopened after an error."""

    def __init__(self, settings: RelaySettings) -> None:
        self.settings = settings
        self._idle: list[aiosmtplib.SMTP] = []

    async def _connect(self) -> aiosmtplib.SMTP:
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
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return _all(recipients, f"relay unreachable: {_text(exc)}", temporary=True)
        keep = True
        try:
            refused, _ = await client.sendmail(envelope_from, list(recipients), data)
            return _classify(recipients, {r: (e.code, e.message) for r, e in refused.items()})
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return _classify(recipients, {e.recipient: (e.code, e.message) for e in exc.recipients})
        except aiosmtplib.SMTPResponseException as exc:  # MAIL FROM or DATA refused
            keep = False  # start the next transaction on a clean connection
            return _all(recipients, f"{exc.code} {exc.message}", temporary=exc.code < 500)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            keep = False
            return _all(recipients, f"relay error: {_text(exc)}", temporary=True)
        finally:
            if keep and client.is_connected:
                self._idle.append(client)
            else:
                client.close()

    async def close(self) -> None:
        while self._idle:
            client = self._idle.pop()
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _all(recipients: Sequence[str], reply: str, *, temporary: bool) -> Result:
    pairs = tuple((r, reply) for r in recipients)
    return Result(sent=(), deferred=pairs) if temporary else Result(sent=(), failed=pairs)


def _classify(recipients: Sequence[str], refused: dict[str, tuple[int, str]]) -> Result:
    sent: list[str] = []
    deferred: list[tuple[str, str]] = []
    failed: list[tuple[str, str]] = []
    for r in recipients:
        if r not in refused:
            sent.append(r)
            continue
        code, message = refused[r]
        (failed if code >= 500 else deferred).append((r, f"{code} {message}"))
    return Result(tuple(sent), tuple(deferred), tuple(failed))


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
            return _all(recipients, f"outbox not writable: {exc.strerror}", temporary=True)
        return Result(sent=tuple(recipients))

    def _write(self, envelope_from: str, recipients: Sequence[str], data: bytes) -> None:
        for rcpt in recipients:
            head = f"Return-Path: <{envelope_from}>\r\nDelivered-To: {rcpt}\r\n".encode()
            self._box.add(head + data)

    async def close(self) -> None:
        return None

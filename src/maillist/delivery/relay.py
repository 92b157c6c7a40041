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

from maillist.delivery.pipelining import PipelinedConnection, Transaction, UnsafeAddress
from maillist.mail.downgrade import downgrade, needs_smtputf8
from maillist.smtpresult import Result, classify, everyone

log = logging.getLogger("maillist.relay")
QUIT_SECONDS = 5.0


class Relay(Protocol):
    async def send(self, envelope_from: str, recipients: Sequence[str], data: bytes) -> Result: ...

    async def send_each(self, items: Sequence[Transaction]) -> list[Result]:
        """Several transactions (personalised copies), a result for each; never raises."""
        ...

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
        if client.is_ehlo_or_helo_needed:  # what it offers (SMTPUTF8) is known before a send
            await client.ehlo()
        if s.username:
            await client.login(s.username, s.password)
        return client

    async def send(self, envelope_from: str, recipients: Sequence[str], data: bytes) -> Result:
        """One transaction; never raises. A pooled connection that turns out dead (the relay
        restarted, or closed it as idle) costs one fresh connection, not a deferral: the rest of
        the pool died with it and is dropped too (as Postfix's connection cache does)."""
        pooled = bool(self._idle)
        result, dead = await self._attempt(envelope_from, recipients, data)
        if dead and pooled:
            log.info("a pooled relay connection was dropped; retrying on a new one")
            self._drop_idle()
            result, _ = await self._attempt(envelope_from, recipients, data)
        return result

    async def send_each(self, items: Sequence[Transaction]) -> list[Result]:
        """Several transactions on one connection, pipelined one after another when the relay
        allows (one round trip each); one at a time through `send` otherwise, and when a copy
        needs SMTPUTF8. Never raises: what the relay did not answer waits (deferred)."""
        results: list[Result] = []
        retried = False
        while len(results) < len(items):
            rest = items[len(results) :]
            if self._pipelining is False or any(needs_smtputf8(s, list(r), d) for s, r, d in rest):
                return results + await self._one_by_one(rest)
            pooled = bool(self._idle)
            try:
                client = self._idle.pop() if self._idle else await self._connect()
            except Exception as exc:  # as in _attempt: every copy left waits
                reply = f"relay unreachable: {_text(exc)}"
                return results + [everyone(r, reply, temporary=True) for _, r, _ in rest]
            if not isinstance(client, PipelinedConnection):  # no PIPELINING, learnt just now
                self._idle.append(client)
                return results + await self._one_by_one(rest)
            answered = len(results)
            try:
                await client.transactions(rest, results)
            except UnsafeAddress:  # raised before anything is sent: `send` fails that one alone
                self._idle.append(client)
                return results + await self._one_by_one(rest)
            except Exception as exc:  # broken, timed out, garbled: what was answered stands
                client.close()
                if pooled and not retried and len(results) == answered:
                    retried = True  # a dead pooled connection (as in send): once on a new one
                    self._drop_idle()
                    continue
                reply = f"relay error: {_text(exc)}"
                return results + [
                    everyone(r, reply, temporary=True) for _, r, _ in items[len(results) :]
                ]
            if client.usable:
                self._idle.append(client)
        return results

    async def _one_by_one(self, items: Sequence[Transaction]) -> list[Result]:
        return [await self.send(sender, recipients, data) for sender, recipients, data in items]

    async def _attempt(
        self, envelope_from: str, recipients: Sequence[str], data: bytes
    ) -> tuple[Result, bool]:
        """(result, whether the connection was found dead rather than answering). A copy that
        needs SMTPUTF8 through a relay without it: ASCII recipients get it downgraded
        (mail/downgrade.py), the others wait with the reason."""
        try:
            client = self._idle.pop() if self._idle else await self._connect()
        except Exception as exc:  # refused, unreachable, TLS or AUTH failure, a garbled greeting
            return everyone(recipients, f"relay unreachable: {_text(exc)}", temporary=True), False
        utf8 = needs_smtputf8(envelope_from, list(recipients), data)
        if not utf8 or _offers_smtputf8(client):
            return await self._on(client, envelope_from, recipients, data, utf8)
        wide = [r for r in recipients if not r.isascii() or not envelope_from.isascii()]
        narrow = [r for r in recipients if r not in wide]
        waiting = everyone(wide, NO_SMTPUTF8, temporary=True)
        if not narrow:
            self._idle.append(client)
            return waiting, False
        result, dead = await self._on(client, envelope_from, narrow, downgrade(data), False)
        return Result(result.sent, result.deferred + waiting.deferred, result.failed), dead

    async def _on(
        self,
        client: aiosmtplib.SMTP | PipelinedConnection,
        envelope_from: str,
        recipients: Sequence[str],
        data: bytes,
        utf8: bool,
    ) -> tuple[Result, bool]:
        if isinstance(client, PipelinedConnection):
            return await self._pipelined(client, envelope_from, recipients, data, utf8)
        keep = True
        try:
            options = ["SMTPUTF8"] if utf8 else []
            refused, _ = await client.sendmail(
                envelope_from, list(recipients), data, mail_options=options
            )
            return classify(recipients, {r: (e.code, e.message) for r, e in refused.items()}), False
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return classify(
                recipients, {e.recipient: (e.code, e.message) for e in exc.recipients}
            ), False
        except aiosmtplib.SMTPResponseException as exc:  # MAIL FROM or DATA refused
            keep = False  # start the next transaction on a clean connection
            return everyone(
                recipients, f"{exc.code} {exc.message}", temporary=exc.code < 500
            ), False
        except (aiosmtplib.SMTPServerDisconnected, OSError, EOFError) as exc:
            keep = False
            return everyone(recipients, f"relay error: {_text(exc)}", temporary=True), True
        except Exception as exc:  # a timeout, a client error: this batch waits and is retried
            keep = False
            return everyone(recipients, f"relay error: {_text(exc)}", temporary=True), False
        finally:
            if keep and client.is_connected:
                self._idle.append(client)
            else:
                client.close()

    async def _pipelined(
        self,
        conn: PipelinedConnection,
        envelope_from: str,
        recipients: Sequence[str],
        data: bytes,
        utf8: bool,
    ) -> tuple[Result, bool]:
        try:
            result = await conn.transaction(envelope_from, recipients, data, utf8=utf8)
        except UnsafeAddress as exc:  # cannot be written into a command: retrying cannot help
            return everyone(recipients, f"not sent: {exc}", temporary=False), False
        except (OSError, EOFError) as exc:  # EOFError: asyncio.IncompleteReadError
            conn.close()
            return everyone(recipients, f"relay error: {_text(exc)}", temporary=True), True
        except Exception as exc:  # a timeout, a garbled reply: this batch waits and is retried
            conn.close()
            return everyone(recipients, f"relay error: {_text(exc)}", temporary=True), False
        if conn.usable:
            self._idle.append(conn)
        return result, False

    def _drop_idle(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def close(self) -> None:
        """QUIT each pooled connection; one the relay already dropped is just closed."""
        while self._idle:
            client = self._idle.pop()
            try:
                await asyncio.wait_for(client.quit(), QUIT_SECONDS)
            except Exception:  # EOF, reset, timeout, a garbled reply: it is going away anyway
                client.close()


NO_SMTPUTF8 = (
    "454 the relay does not offer SMTPUTF8 (RFC 6531), which this address needs: waiting for a "
    "relay that does (Postfix: smtputf8_enable = yes)"
)


def _offers_smtputf8(client: aiosmtplib.SMTP | PipelinedConnection) -> bool:
    if isinstance(client, PipelinedConnection):
        return client.smtputf8
    return bool(client.supports_extension("smtputf8"))


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class MaildirOutbox:
    """The embedded default with no relay: one file per recipient in a Maildir, as delivered.
    Maildir files end their lines with LF (what mutt, s-nail and `mailbox` expect), not SMTP's CRLF."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._box = mailbox.Maildir(str(path), create=True)

    async def send(self, envelope_from: str, recipients: Sequence[str], data: bytes) -> Result:
        try:
            await asyncio.to_thread(self._write, envelope_from, recipients, data)
        except OSError as exc:
            return everyone(recipients, f"outbox not writable: {exc.strerror}", temporary=True)
        except Exception as exc:
            return everyone(recipients, f"outbox error: {_text(exc)}", temporary=True)
        return Result(sent=tuple(recipients))

    async def send_each(self, items: Sequence[Transaction]) -> list[Result]:
        return [await self.send(sender, recipients, data) for sender, recipients, data in items]

    def _write(self, envelope_from: str, recipients: Sequence[str], data: bytes) -> None:
        text = data.replace(b"\r\n", b"\n")
        for rcpt in recipients:
            head = f"Return-Path: <{envelope_from}>\nDelivered-To: {rcpt}\n".encode()
            self._box.add(head + text)

    async def close(self) -> None:
        return None

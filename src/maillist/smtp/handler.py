"""aiosmtpd hooks -> services. Domain errors become SMTP replies here, in one table."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import Envelope, Session

from maillist import replies
from maillist.errors import BadAddress, MaillistError, MessageRefused, UnknownList
from maillist.mail import mailparse, reading
from maillist.mail.mailparse import Limits, ParsedMessage
from maillist.metrics import Metrics
from maillist.models import Authentication, AuthResult, Kind, MailingList, Verdict
from maillist.services.authentication import Authenticator
from maillist.services.directory import ListDirectory
from maillist.services.ingest import Incoming, Ingestor, Outcome
from maillist.services.sandbox import Sandbox, SandboxBusy, SandboxFailed
from maillist.smtp import tls
from maillist.smtp.server import ServerSettings

log = logging.getLogger("maillist.smtp")

REPLIES: dict[type[MaillistError], replies.Reply] = {
    UnknownList: replies.NO_SUCH_LIST,
    BadAddress: replies.NOT_A_LIST_ADDRESS,
}
INLINE_PARSE_BYTES = 64 * 1024
TEMPORARY = replies.STORE_FAILED()


class Handler:
    def __init__(
        self,
        directory: ListDirectory,
        ingestor: Ingestor,
        settings: ServerSettings,
        limits: Limits,
        parser: Sandbox,
        metrics: Metrics | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.parser = parser
        self.metrics = metrics or Metrics()
        self.directory = directory
        self.ingestor = ingestor
        self.settings = settings
        self.limits = limits

    def __dir__(self) -> list[str]:
        """aiosmtpd scans dir(handler) for hooks, and getmembers(handler) for auth_* methods, on
        every connection; listing only the hooks keeps that scan cheap."""
        return [name for name in type(self).__dict__ if name.startswith("handle_")]

    def size_limit(self) -> int:
        """What EHLO announces as SIZE: the largest any list takes (RCPT narrows it per list).
        Read from the directory's memory: a connection costs no database round trip."""
        return self.directory.largest_known(self.settings.default_max_size)

    async def handle_MAIL(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        server.data_size_limit = server.session_max_size  # a new transaction starts wide again
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return replies.SENDER_OK()

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= self.settings.max_recipients:
            return replies.TOO_MANY_RECIPIENTS(limit=self.settings.max_recipients)
        try:
            mlist, _kind, _tag = await self.directory.resolve(address)
        except (UnknownList, BadAddress) as exc:
            log.info("refused recipient %r from %s: %s", address, session.peer, exc)
            return REPLIES[type(exc)](rcpt=address[:200])
        except Exception:
            log.exception("recipient lookup failed for %r", address)
            return replies.LOOKUP_FAILED()
        declared = _declared_size(envelope.mail_options)
        if declared is not None and declared > mlist.max_message_size:
            return replies.TOO_BIG_FOR_LIST(list=mlist.address, limit=mlist.max_message_size)
        server.data_size_limit = min(
            server.data_size_limit or mlist.max_message_size, mlist.max_message_size
        )
        envelope.rcpt_tos.append(address)
        return replies.RECIPIENT_OK()

    async def handle_EHLO(
        self, server: Any, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        """aiosmtpd's EHLO reply, less its AUTH line: this server takes no submissions (and
        offers no mechanism), so it never invites a password."""
        session.host_name = hostname
        return [r for r in responses if not r[4:].upper().startswith("AUTH")]

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if self.settings.tls is not None:  # the MX itself: this hop's trace field, TLS recorded
            peer = session.peer[0] if isinstance(session.peer, tuple) else "unknown"
            ssl_object = server.transport.get_extra_info("ssl_object")
            trace = tls.received(
                str(session.host_name or ""), str(peer), self.settings.hostname,
                ssl_object, format_datetime(datetime.now(UTC)),
            )  # fmt: skip
            raw = trace + raw
        lmtp = isinstance(server, LMTP)
        targets: list[tuple[str, MailingList | None, Kind, str]] = []
        for rcpt in envelope.rcpt_tos:
            try:
                mlist, kind, tag = await self.directory.resolve(rcpt)
                targets.append((rcpt, mlist, kind, tag))
            except (UnknownList, BadAddress):  # the list was deleted since RCPT
                targets.append((rcpt, None, Kind.POST, ""))
        first = next((t[1] for t in targets if t[1] is not None), None)
        if first is None:
            answers = [REPLIES[UnknownList](rcpt=t[0][:200]) for t in targets]
            return _combine(answers, lmtp)
        try:
            parsed = await self._parse(raw, first.domain)
        except MessageRefused as exc:
            self.metrics.refused.inc()
            log.info(
                "refused message from %s for %s: %s", envelope.mail_from, envelope.rcpt_tos, exc
            )
            return _combine([str(exc)] * len(targets), lmtp)
        except SandboxBusy:
            log.warning("every parser busy: 451 for a %d-byte message", len(raw))
            return _combine(
                [replies.PARSERS_BUSY()] * len(targets),
                lmtp,
            )
        except TimeoutError:
            self.metrics.refused.inc()
            log.warning(
                "parse budget exceeded for a %d-byte message from %s", len(raw), envelope.mail_from
            )
            return _combine(
                [replies.PARSE_TIME_LIMIT()] * len(targets),
                lmtp,
            )
        except SandboxFailed as exc:
            self.metrics.refused.inc()
            failure = replies.PARSER_FAILED() if str(exc).startswith("worker") else None
            return _combine([failure or replies.UNPARSABLE(error=str(exc))] * len(targets), lmtp)
        kinds = {t[2] for t in targets if t[1] is not None}
        read = await self._read(raw, parsed, kinds)
        if read is None:
            return _combine([replies.PARSERS_BUSY()] * len(targets), lmtp)
        auth = await self._authenticate(raw, parsed, targets)
        answers = []
        for rcpt, target, kind, tag in targets:
            if target is None:
                answers.append(REPLIES[UnknownList](rcpt=rcpt[:200]))
                continue
            client = str(session.peer[0]) if isinstance(session.peer, tuple) else ""
            # The null reverse-path (MAIL FROM:<>, bounces and auto-replies) is stored as "".
            sender = "" if envelope.mail_from in (None, "", "<>") else str(envelope.mail_from)
            item = Incoming(
                target, kind, tag, rcpt, sender, raw, parsed, client, auth, reading=read
            )
            answers.append(await self._store(item))
        return _combine(answers, lmtp)

    async def _parse(self, raw: bytes, domain: str) -> ParsedMessage:
        """Within the time budget. A small single-part message is parsed here on the loop: the
        prescan's caps bound what its header parse can cost, and only its header is parsed. A
        multipart message or anything larger goes to the parse pool, where the deadline is
        real: a worker past it is killed."""
        now = datetime.now(UTC)
        if len(raw) <= INLINE_PARSE_BYTES and not mailparse.is_multipart(raw):
            start = time.monotonic()
            parsed = mailparse.prepare(raw, self.limits, received_at=now, domain=domain)
            if time.monotonic() - start > self.limits.parse_seconds:
                raise TimeoutError
            return parsed
        return await self.parser.run(
            mailparse.prepare, raw, self.limits, received_at=now, domain=domain,
            seconds=self.limits.parse_seconds,
        )  # fmt: skip

    async def _read(
        self, raw: bytes, parsed: ParsedMessage, kinds: set[Kind]
    ) -> reading.Reading | None:
        """What a message to -request, -confirm or -bounces says, read in the sandbox under the
        parse budget. One that cannot be read in time is handled as one that says nothing
        (logged); None when every worker stayed busy (the client gets a 451 and retries)."""
        typed = bool(kinds & {Kind.REQUEST, Kind.CONFIRM})
        bounce = Kind.BOUNCES in kinds
        if not typed and not bounce:
            return reading.Reading()
        try:
            return await self.parser.run(
                reading.read, raw, typed=typed, bounce=bounce, seconds=self.limits.parse_seconds
            )
        except SandboxBusy:
            return None
        except (TimeoutError, MaillistError) as exc:
            problem = "over the parse budget" if isinstance(exc, TimeoutError) else str(exc)
            log.warning("<%s> could not be read: %s", parsed.message_id, problem)
            return reading.unreadable(problem, bounce=bounce)

    async def _authenticate(
        self,
        raw: bytes,
        parsed: ParsedMessage,
        targets: list[tuple[str, MailingList | None, Kind, str]],
    ) -> Authentication | None:
        """DKIM, ARC and DMARC for a post, and for commands to -request (a command that changes
        a member's delivery acts at once only when the From is proven). A check that breaks is
        logged and counts as unanswered: the post is not held, but wears no badges."""
        checked = {Kind.POST, Kind.REQUEST}
        if self.authenticator is None or not any(t[2] in checked for t in targets if t[1]):
            return None
        try:
            return await self.authenticator.check(raw, parsed.sender)
        except Exception:
            log.exception("authenticating <%s> failed", parsed.message_id)
            return Authentication(dmarc=AuthResult.TEMPERROR, policy="unknown")

    async def _store(self, item: Incoming) -> str:
        try:
            outcome = await self.ingestor.submit(item)
        except Exception:
            log.exception("storing %s for %s failed", item.parsed.message_id, item.recipient)
            return TEMPORARY
        _log_outcome(item, item.parsed, outcome)
        if not outcome.duplicate:
            self.metrics.received.labels(item.kind).inc()
        if item.kind == Kind.POST:
            self.metrics.posts.labels("duplicate" if outcome.duplicate else outcome.verdict).inc()
        note = " (duplicate)" if outcome.duplicate else ""
        if outcome.verdict == Verdict.REJECT and not outcome.duplicate:
            domain = item.auth.from_domain if item.auth else "the author's domain"
            return replies.UNAUTHENTICATED(message_id=outcome.message_id, domain=domain)
        return replies.QUEUED(message_id=outcome.message_id, row=outcome.row_id, note=note)


def _declared_size(options: list[str]) -> int | None:
    for option in options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return None


def _combine(answers: list[str], lmtp: bool) -> str:
    """LMTP: one reply per recipient (RFC 2033). SMTP: one reply; any temporary failure makes the
    client retry the lot, which is safe because a stored Message-ID is only acted on once."""
    if lmtp:
        return "\r\n".join(answers)
    for prefix in ("4", "5"):
        for reply in answers:
            if reply.startswith(prefix) and (
                prefix == "4" or all(r.startswith("5") for r in answers)
            ):
                return reply
    return next(r for r in answers if r.startswith("2"))


def _log_outcome(item: Incoming, parsed: ParsedMessage, outcome: Outcome) -> None:
    log.info(
        "message <%s> list=%s kind=%s from=%s size=%d verdict=%s%s%s",
        outcome.message_id,
        item.mlist.address,
        item.kind,
        parsed.sender or item.envelope_from or "<>",
        len(item.raw),
        outcome.verdict,
        " duplicate" if outcome.duplicate else "",
        f" reasons={'; '.join(outcome.reasons)}" if outcome.reasons else "",
    )

"""Members and moderators acting by email: -join, -leave, -confirm+TOKEN, -request commands,
-owner, and the notices that go with them. Runs inside ingest's transaction (services/ingest.py),
so a notice is queued exactly when the decision that made it commits.

Never a weapon: nothing is ever sent to a null sender, to automatic or bulk mail, to mail with a
List-Id, to a From that failed the strict parse, or in answer to maillist's own notices; one open
confirmation per list, address and action, re-sent at most once an hour; and per-address and
per-client hourly caps counted in the database (so a restart resets nothing)."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from maillist import clock
from maillist.db import audit as db_audit
from maillist.db import held as db_held
from maillist.db import lists as db_lists
from maillist.db import messages as db_messages
from maillist.db import notices as db_notices
from maillist.db import outbound as db_outbound
from maillist.db import people as db_people
from maillist.db import requests as db_requests
from maillist.db import site as db_site
from maillist.db import subscriptions as db_subs
from maillist.db.store import Conn, savepoint
from maillist.errors import AlreadyDelivered, MaillistError, UnknownHeld
from maillist.mail import bouncereport, replytext
from maillist.mail.mailparse import ParsedMessage
from maillist.mail.reading import Reading
from maillist.mail.render import sub_address
from maillist.models import (
    Authentication,
    Kind,
    MailingList,
    Mode,
    NewMember,
    RequestAction,
    RequestState,
    Verdict,
)
from maillist.people import tokens
from maillist.services import bounces, lookalikes
from maillist.services.notify import Notifier

log = logging.getLogger("maillist.requests")

RESEND_SECONDS = 3600.0  # an open confirmation is sent again at most this often


MAX_COMMANDS = 10
MODERATOR_NOTICES_HOUR = 30  # held-post notices one moderator gets from one list per hour
MODERATE = RequestAction.MODERATE


@dataclass(frozen=True, slots=True)
class Mail:
    """One message to a sub-address, as ingest stored it."""

    mlist: MailingList
    kind: Kind
    tag: str
    row: int  # its messages row: the cause every notice it prompts is queued against
    envelope_from: str
    client: str  # the connecting client's address
    raw: bytes
    parsed: ParsedMessage
    # what it says, read in the intake sandbox (mail/reading.py)
    reading: Reading = field(default_factory=Reading)
    auth: Authentication | None = None  # whether its From is proven (models.Authentication)


@dataclass(frozen=True, slots=True)
class Result:
    verdict: Verdict
    reason: str


def why_not_answer(mail: Mail) -> str | None:
    """The reason maillist must not answer this message at all, else None (backscatter rules)."""
    p = mail.parsed
    if not mail.envelope_from:
        return "null sender <>"
    if p.auto_submitted and p.auto_submitted.split(";")[0].strip() != "no":
        return f"automatic mail (Auto-Submitted: {p.auto_submitted[:40]})"
    if p.autoreply:
        return "automatic mail (auto-reply)"
    if p.precedence in {"bulk", "junk", "list"}:
        return f"Precedence: {p.precedence}"
    if p.list_ids:
        return "mail from a list (List-Id)"
    if p.sender is None:
        return f"sender unusable: {p.sender_problem}"
    if sub_address(mail.mlist, "request").lower() in p.x_loops:
        return "one of maillist's own notices"
    return None


def new_token() -> tuple[str, bytes]:
    """(token, its SHA-256): 128 random bits as 32 hex digits, fit for an address's +tag."""
    token = secrets.token_bytes(16).hex()
    return token, _hash(token)


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.lower().encode()).digest()


class Requests:
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def handle(self, conn: Conn, mail: Mail) -> Result:
        """Act on one message to a sub-address; the result is stored as its verdict."""
        if mail.kind is Kind.BOUNCES:  # never answered, never redistributed
            report = mail.reading.bounce or bouncereport.unreadable("not read")
            outcome = bounces.process(conn, mail.mlist, mail.row, report, mail.tag, self.notifier)
            return Result(Verdict.ACCEPT, outcome)
        refuse = why_not_answer(mail)
        if refuse is not None and mail.kind is not Kind.OWNER:
            return Result(Verdict.DISCARD, f"not answered: {refuse}")
        if mail.kind is Kind.JOIN:
            return self.join(conn, mail)
        if mail.kind is Kind.LEAVE:
            return self.leave_now(conn, mail) if mail.tag else self.leave(conn, mail)
        if mail.kind is Kind.CONFIRM:
            return self.confirm(conn, mail)
        if mail.kind is Kind.REQUEST:
            return self.commands(conn, mail)
        if mail.kind is Kind.OWNER:
            return self.to_owners(conn, mail)
        return Result(Verdict.DISCARD, f"nothing handles mail to -{mail.kind}")

    # --- joining and leaving ------------------------------------------------------------------

    def join(self, conn: Conn, mail: Mail) -> Result:
        mlist, address = mail.mlist, _sender(mail)
        if db_subs.is_member(conn, mlist.id, address):
            return Result(Verdict.DISCARD, f"join: {address} is already a member")
        if mlist.subscription == "closed":
            self.notifier.send(conn, mlist, mail.row, address, "refused-join", client=mail.client)
            return Result(Verdict.ACCEPT, "join: the list is closed; refusal sent")
        return self._confirmation(conn, mail, RequestAction.JOIN, joining_name(mail))

    def leave(self, conn: Conn, mail: Mail) -> Result:
        address = _sender(mail)
        if not db_subs.is_member(conn, mail.mlist.id, address):
            return Result(Verdict.DISCARD, f"leave: {address} is not a member")
        return self._confirmation(conn, mail, RequestAction.LEAVE)

    def _confirmation(
        self, conn: Conn, mail: Mail, action: RequestAction, detail: str = ""
    ) -> Result:
        """A confirmation for `action` (with `detail`: the mode a `mode` request asks for),
        sent to the address the request names: only its owner can answer it."""
        mlist, address = mail.mlist, _sender(mail)
        now = clock.now()
        token, digest = new_token()
        open_request = db_requests.open_for(conn, mlist.id, address, action, clock.iso(now))
        if open_request is not None and open_request.detail != detail:
            # A different question (set digest after set nomail): the old one is void.
            db_requests.decide(
                conn, open_request.id, RequestState.CANCELLED, clock.iso(now), "replaced"
            )
            open_request = None
        if open_request is not None:
            last = clock.parse(open_request.last_sent_at)
            if (now - last).total_seconds() < RESEND_SECONDS:
                return Result(Verdict.DISCARD, f"{action}: a confirmation was sent within the hour")
            db_requests.replace_token(conn, open_request.id, digest, clock.iso(now))
        else:
            expires = clock.iso(now + timedelta(days=mlist.token_days))
            db_requests.insert(
                conn, mlist.id, action, address, digest, clock.iso(now), expires, detail=detail
            )
        confirm = sub_address(mlist, "confirm", token)
        sent = self.notifier.send(
            conn, mlist, mail.row, address, f"confirm-{action}", client=mail.client,
            reply_to=confirm, in_reply_to=mail.parsed.message_id, token=token, confirm=confirm,
            days=mlist.token_days, mode=detail if action is RequestAction.MODE else "",
        )  # fmt: skip
        what = f"{action} {detail}".strip()
        return Result(
            Verdict.ACCEPT, f"{what}: confirmation {'sent' if sent else 'held back by a cap'}"
        )

    def leave_now(self, conn: Conn, mail: Mail) -> Result:
        """LIST-leave+TOKEN from a personalised copy's List-Unsubscribe: the token proves the
        copy was this member's, so the member goes at once."""
        mlist = mail.mlist
        person_id = tokens.person_of(mail.tag)
        person = db_people.by_id(conn, person_id) if person_id is not None else None
        secret = db_site.secret(conn)
        if person is None or not tokens.verify(
            mail.tag, secret, tokens.UNSUBSCRIBE, mlist.address, person.address, person.id
        ):
            return Result(Verdict.DISCARD, "leave: unknown or foreign unsubscribe token")
        if not db_subs.delete(conn, mlist.id, person.address):
            return Result(Verdict.DISCARD, f"leave: {person.address} was not a member")
        db_audit.record(
            conn, clock.stamp(), f"email:{person.address}", "members.unsubscribe", mlist.address,
            person.address,
        )  # fmt: skip
        self.notifier.send(conn, mlist, mail.row, person.address, "goodbye", client=mail.client)
        return Result(Verdict.ACCEPT, f"leave: {person.address} unsubscribed by their copy's link")

    # --- confirmations ------------------------------------------------------------------------

    def confirm(self, conn: Conn, mail: Mail) -> Result:
        mlist = mail.mlist
        request = db_requests.by_hash(conn, _hash(mail.tag))
        now = clock.stamp()
        if (
            request is not None
            and request.list_id == mlist.id
            and request.action is MODERATE
            and request.state is RequestState.DONE
        ):
            self.notifier.send(
                conn, mlist, mail.row, request.address, "moderation-result",
                outcome="already handled",
                text=f"That post was already handled by {request.decided_by or 'a moderator'}.",
            )  # fmt: skip
            return Result(Verdict.DISCARD, f"moderation: already handled by {request.decided_by}")
        if (
            request is None
            or request.list_id != mlist.id
            or request.state is not RequestState.PENDING
            or request.expires_at <= now
        ):
            return self._bad_token(conn, mail, request)
        if request.action is MODERATE:
            return self.moderate(conn, mail, request)
        address = request.address
        if request.action is RequestAction.JOIN:
            if db_subs.is_member(conn, mlist.id, address):
                db_requests.decide(conn, request.id, RequestState.DONE, now, address)
                return Result(Verdict.DISCARD, f"confirm: {address} is already a member")
            lookalike = lookalikes.why(conn, address)  # an impersonation: a moderator decides
            if mlist.subscription == "approve" or lookalike:
                db_requests.decide(conn, request.id, RequestState.AWAITING, now, address)
                self.notifier.send(
                    conn, mlist, mail.row, address, "awaiting-approval", capped=False
                )
                note = f" ({lookalike})" if lookalike else ""
                return Result(Verdict.ACCEPT, f"confirm: {address} awaits a moderator{note}")
            subscribe(conn, mlist, address, f"email:{address}", now, name=request.detail)
            db_requests.decide(conn, request.id, RequestState.DONE, now, address)
            self.notifier.send(conn, mlist, mail.row, address, "welcome", capped=False)
            return Result(Verdict.ACCEPT, f"confirm: {address} joined")
        if request.action is RequestAction.MODE:
            db_requests.decide(conn, request.id, RequestState.DONE, now, address)
            return self._set_mode(conn, mail, address, Mode(request.detail), "confirmed")
        db_requests.decide(conn, request.id, RequestState.DONE, now, address)
        if db_subs.delete(conn, mlist.id, address):
            db_audit.record(conn, now, f"email:{address}", "members.leave", mlist.address, address)
            self.notifier.send(conn, mlist, mail.row, address, "goodbye", capped=False)
            return Result(Verdict.ACCEPT, f"confirm: {address} left")
        return Result(Verdict.DISCARD, f"confirm: {address} was no longer a member")

    def _bad_token(self, conn: Conn, mail: Mail, request: db_requests.Request | None) -> Result:
        """At most one short notice (the caps and the once-a-day rule), never an action."""
        address = _sender(mail)
        day_ago = clock.iso(clock.now() - timedelta(days=1))
        if db_notices.count_to(conn, address, day_ago, mail.mlist.id, "bad-token") == 0:
            self.notifier.send(conn, mail.mlist, mail.row, address, "bad-token", client=mail.client)
        state = "unknown" if request is None else request.state
        return Result(Verdict.DISCARD, f"confirm: token {state}, expired or foreign; nothing done")

    # --- moderation by reply ------------------------------------------------------------------

    def on_hold(self, conn: Conn, mail: Mail, held_id: int, reason: str) -> None:
        """A post was held: each moderator (or owner, when there is no moderator) gets a notice
        with the post attached and a token of their own; the author hears at most once a day."""
        mlist = mail.mlist
        moderators = db_subs.with_role(conn, mlist.id, "moderator") or db_subs.with_role(
            conn, mlist.id, "owner"
        )
        now = clock.now()
        expires = clock.iso(now + timedelta(days=max(mlist.token_days, 7)))
        subject = mail.parsed.subject or "(no subject)"
        hour_ago = clock.iso(now - timedelta(hours=1))
        for moderator in moderators:
            told = db_notices.count_to(conn, moderator, hour_ago, mlist.id, "held-moderator")
            if told >= MODERATOR_NOTICES_HOUR:
                # A flood of posts to hold must not become a flood of mail to the moderators:
                # past the cap the post waits in `maillist moderation list` without a notice.
                log.warning(
                    "held post on %s: no notice to %s (%d this hour)", mlist.address, moderator,
                    told,
                )  # fmt: skip
                continue
            token, digest = new_token()
            db_requests.insert(
                conn, mlist.id, MODERATE, moderator, digest, clock.iso(now), expires, held_id
            )
            confirm = sub_address(mlist, "confirm", token)
            self.notifier.send(
                conn, mlist, mail.row, moderator, "held-moderator", capped=False,
                reply_to=confirm, attach=mail.raw, token=token, subject=subject,
                sender=mail.parsed.sender or mail.envelope_from, reason=reason,
            )  # fmt: skip
        if why_not_answer(mail) is None:
            author = _sender(mail)
            day_ago = clock.iso(now - timedelta(days=1))
            if db_notices.count_to(conn, author, day_ago, mlist.id, "held-author") == 0:
                self.notifier.send(
                    conn, mlist, mail.row, author, "held-author", client=mail.client,
                    subject=subject, reason=reason,
                )  # fmt: skip

    def moderate(self, conn: Conn, mail: Mail, request: db_requests.Request) -> Result:
        mlist, moderator = mail.mlist, request.address
        assert request.held_id is not None
        found = db_held.get(conn, request.held_id)
        if found is None or found[0].decision is not None:
            by = request.decided_by or "another moderator"
            self.notifier.send(
                conn, mlist, mail.row, moderator, "moderation-result", capped=False,
                outcome="already handled", text=f"That post was already handled by {by}.",
            )  # fmt: skip
            return Result(Verdict.DISCARD, "moderation: the post was already handled")
        word, rest = replytext.answer_word(mail.reading.typed)
        decision = {
            "approve": Verdict.APPROVED, "reject": Verdict.REJECTED, "discard": Verdict.DISCARDED
        }.get(word)  # fmt: skip
        if decision is None:
            self.notifier.send(
                conn, mlist, mail.row, moderator, "moderation-help", capped=False,
                token=mail.tag,
            )  # fmt: skip
            return Result(Verdict.DISCARD, "moderation: reply not understood; help sent")
        try:
            with savepoint(conn, "decide"):
                outcome = decide_held(
                    conn, self.notifier, request.held_id, decision, f"email:{moderator}", rest
                )
        except MaillistError as exc:
            outcome = str(exc)
        self.notifier.send(
            conn, mlist, mail.row, moderator, "moderation-result", capped=False,
            outcome=f"post {decision}", text=outcome,
        )  # fmt: skip
        return Result(Verdict.ACCEPT, f"moderation: {outcome}")

    # --- -request commands --------------------------------------------------------------------

    def commands(self, conn: Conn, mail: Mail) -> Result:
        lines = replytext.command_lines(mail.parsed.subject, mail.reading.typed, MAX_COMMANDS)
        results: list[tuple[str, str]] = []
        show_help = not lines
        for number, line in enumerate(lines[:MAX_COMMANDS]):
            outcome, wants_help = self._command(conn, mail, line)
            if wants_help and number and outcome.startswith("Not a command"):
                outcome += " Reading stopped here."
            results.append((line, outcome))
            show_help = show_help or wants_help
        if len(lines) > MAX_COMMANDS:
            results.append(("...", f"only the first {MAX_COMMANDS} commands were read"))
        self.notifier.send(
            conn, mail.mlist, mail.row, _sender(mail), "results", client=mail.client,
            in_reply_to=mail.parsed.message_id, results=results, help=show_help,
        )  # fmt: skip
        return Result(Verdict.ACCEPT, f"commands: {', '.join(c for c, _ in results) or 'help'}")

    def _command(self, conn: Conn, mail: Mail, line: str) -> tuple[str, bool]:
        mlist, address = mail.mlist, _sender(mail)
        words = line.lower().split()
        verb = words[0] if words else ""
        if verb in {"subscribe", "join"}:
            if db_subs.is_member(conn, mlist.id, address):
                return f"{address} is already a member.", False
            if mlist.subscription == "closed":
                return "This list does not take subscriptions by email.", False
            return (
                self._request_by_command(conn, mail, RequestAction.JOIN, joining_name(mail)),
                False,
            )
        if verb in {"unsubscribe", "leave"}:
            if not db_subs.is_member(conn, mlist.id, address):
                return f"{address} is not a member.", False
            return self._request_by_command(conn, mail, RequestAction.LEAVE), False
        if verb == "set" and len(words) == 2 and words[1] in {"nomail", "regular", "digest"}:
            mode = Mode(words[1])
            current = db_subs.get(conn, mlist.id, address)
            if current is None:
                return f"{address} is not a member.", False
            if current.mode == mode and current.status == "enabled":
                return f"Delivery for {address} is already {mode}.", False
            if mail.auth is None or not mail.auth.proven:
                # Anyone can write any From: what a member receives changes only when the
                # member says so from their own mailbox (or their domain's signature proves it).
                result = self._confirmation(conn, mail, RequestAction.MODE, mode.value)
                if result.verdict is Verdict.ACCEPT:
                    return (
                        f"A confirmation was sent to {address} in a separate message: reply to "
                        f"it to make delivery {mode}.", False,
                    )  # fmt: skip
                return "A confirmation was already sent within the hour: reply to that one.", False
            outcome = self._set_mode(conn, mail, address, mode, "signed")
            return outcome.reason, False
        if verb == "info":
            text = f"{mlist.name} <{mlist.address}>"
            return text + (f": {mlist.description}" if mlist.description else ""), False
        if verb == "who":
            if db_subs.role_of(conn, mlist.id, address) not in {"owner", "moderator"}:
                return "Only the list's owners and moderators may see its members.", False
            members = db_subs.members(conn, mlist.id)
            return "\n".join(m.address for m in members) or "(no members)", False
        if verb == "help":
            return "See below.", True
        return "Not a command this list knows.", True

    def _set_mode(self, conn: Conn, mail: Mail, address: str, mode: Mode, how: str) -> Result:
        """The member's delivery mode, changed on their proven word; they are always told
        (uncapped: a change to what they receive must never pass in silence)."""
        mlist = mail.mlist
        if not db_subs.set_field(conn, mlist.id, address, "mode", mode):
            return Result(Verdict.DISCARD, f"mode: {address} is no longer a member")
        if mode is Mode.REGULAR:  # also ends a pause that bounces caused (score reset)
            db_subs.set_field(conn, mlist.id, address, "status", "enabled")
        db_audit.record(
            conn, clock.stamp(), f"email:{address}", "members.set", mlist.address,
            f"{address} mode={mode} ({how})",
        )  # fmt: skip
        self.notifier.send(
            conn, mlist, mail.row, address, "mode-changed", capped=False, mode=mode.value
        )
        return Result(Verdict.ACCEPT, f"Delivery for {address} is now {mode}.")

    def _request_by_command(
        self, conn: Conn, mail: Mail, action: RequestAction, detail: str = ""
    ) -> str:
        result = self._confirmation(conn, mail, action, detail)
        if result.verdict is Verdict.ACCEPT:
            return "A confirmation was sent in a separate message: reply to it to finish."
        return "A confirmation was already sent within the hour: reply to that one."

    # --- -owner -------------------------------------------------------------------------------

    def to_owners(self, conn: Conn, mail: Mail) -> Result:
        mlist = mail.mlist
        marker = sub_address(mlist, "owner").lower()
        if marker in mail.parsed.x_loops:
            return Result(Verdict.DISCARD, "owner: loop (already forwarded by this list)")
        owners = db_subs.with_role(conn, mlist.id, "owner")
        if not owners:
            return Result(Verdict.DISCARD, "owner: the list has no owners")
        data = f"X-Loop: {marker}\r\n".encode() + mail.raw
        at = clock.stamp()
        for owner in owners:
            db_notices.queue(
                conn, mlist.id, mail.row, sub_address(mlist, "bounces"), owner, data, at
            )
        return Result(Verdict.ACCEPT, f"owner: forwarded to {len(owners)} owner(s)")


def joining_name(mail: Mail) -> str:
    """The name a member who joins by email goes by until an admin changes it (`members set
    LIST ADDRESS name ...`): the display name of the message that asked, else the address's
    local part (a footer should never show a whole address)."""
    name = " ".join(mail.parsed.sender_name.split())[:100]
    return name or _sender(mail).rpartition("@")[0][:100]


def subscribe(
    conn: Conn, mlist: MailingList, address: str, actor: str, at: str, name: str = ""
) -> None:
    """`name` is the person's only while they have none (an admin's name is never replaced)."""
    db_people.upsert_many(conn, [(address, "")], at)
    if name:
        db_people.name_if_none(conn, address, name)
    db_subs.insert_many(conn, mlist.id, [NewMember(address)], at)
    db_audit.record(conn, at, actor, "members.join", mlist.address, address)


def decide_held(
    conn: Conn, notifier: Notifier | None, held_id: int, verdict: Verdict, actor: str, reason: str
) -> str:
    """A moderator's decision on a held post, from the CLI or by email: the same rows either way
    (approval: the fan-out job; rejection: the reason mailed to the author). Returns a sentence;
    raises UnknownHeld or AlreadyDelivered (then nothing changed)."""
    found = db_held.get(conn, held_id)
    if found is None:
        raise UnknownHeld(f"no such held message: {held_id}")
    held, message_row, list_id = found
    if held.decision is not None:
        raise UnknownHeld(f"held message {held_id} was already {held.decision}")
    if verdict is Verdict.APPROVED and db_messages.claim(conn, message_row) == "taken":
        raise AlreadyDelivered(
            f"held message {held_id}: a post with Message-ID <{held.message_id}> was already "
            "delivered to the list; discard this one"
        )
    at = clock.stamp()
    db_held.decide(conn, held_id, verdict.value, at, actor, reason)
    db_messages.set_verdict(conn, message_row, verdict)
    db_requests.close_for_held(conn, held_id, at, actor)
    if verdict is Verdict.APPROVED:
        db_outbound.enqueue(conn, message_row, list_id, at)
    action = {Verdict.APPROVED: "approve", Verdict.REJECTED: "reject"}.get(verdict, "discard")
    db_audit.record(
        conn, at, actor, f"moderation.{action}", held.list_address,
        f"held={held_id} <{held.message_id}> {reason}".strip(),
    )  # fmt: skip
    if verdict is Verdict.REJECTED and notifier is not None and held.sender:
        mlist = db_lists.by_id(conn, list_id)
        if mlist is not None:
            notifier.send(
                conn, mlist, message_row, held.sender, "rejected", capped=False,
                subject=held.subject or "(no subject)", reason=reason,
            )  # fmt: skip
    return f"held message {held_id} {verdict.value}"


def _sender(mail: Mail) -> str:
    return mail.parsed.sender or ""

"""Bounces to LIST-bounces@ and LIST-bounces+LOCAL=DOMAIN@: understood with flufl.bounce (in the
intake sandbox, mail/bouncereport.py), matched to a member (the VERP address first, then the
addresses the parser found), scored. Never redistributed.

Anyone can forge a bounce, so a score at the list's threshold disables nothing by itself: the
member gets a probe from `LIST-bounces+probe.TOKEN@` (an HMAC only their copy carries), and
only when that probe bounces is delivery disabled; a probe that has not bounced after
PROBE_DAYS resets the score.

A disabled member is warned weekly (review(), run hourly by the delivery workers), each warning
sent from a VERP probe address `LIST-bounces+probe.TOKEN@`: a week after a warning whose probe
did not bounce, delivery is enabled again; after the list's `bounce_warnings` the member is
removed.

A rejection caused by the author, not the member (a 5.7.x status whose diagnostic names DMARC, a
policy, spam or authentication, or any 5.7.x refusal of a post whose author's domain asks
p=reject or p=quarantine) is recorded as `policy` and never scored: lists that disable members
for their authors' DMARC failures lose innocent members by the hundred."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from maillist import clock
from maillist.db import audit as db_audit
from maillist.db import bounces as db_bounces
from maillist.db import people as db_people
from maillist.db import site as db_site
from maillist.db import subscriptions as db_subs
from maillist.db.store import Conn
from maillist.mail import bouncereport, dmarc, render
from maillist.models import MailingList
from maillist.people import tokens
from maillist.services.notify import Notifier

log = logging.getLogger("maillist.bounces")

HARD, SOFT = 1.0, 0.5


def verp_member(tag: str) -> str:
    """LIST-bounces+anne=example.org@ -> anne@example.org ('' when the tag is not one)."""
    local, equals, domain = tag.rpartition("=")
    return f"{local}@{domain}".lower() if equals and local and "." in domain else ""


_LEAVE_TOKEN = re.compile(r"-leave\+([0-9a-z]{1,12}x[a-z2-7]{26})@", re.IGNORECASE)


def _by_token(conn: Conn, mlist: MailingList, action: str, token: str) -> str:
    """The member a token names, if it verifies ('' otherwise)."""
    person_id = tokens.person_of(token)
    person = db_people.by_id(conn, person_id) if person_id is not None else None
    if person is None:
        return ""
    secret = db_site.secret(conn)
    if not tokens.verify(token, secret, action, mlist.address, person.address, person.id):
        return ""
    return person.address if db_subs.is_member(conn, mlist.id, person.address) else ""


def process(
    conn: Conn,
    mlist: MailingList,
    message_row: int,
    report: bouncereport.Report,
    tag: str,
    notifier: Notifier | None = None,
) -> str:
    """Record and score one bounce, as bouncereport read it (in the intake sandbox); returns
    what was done, for the message's stored reasons. The member is found by the VERP address,
    then the addresses the parser found, then the returned copy's unsubscribe token. When
    delivery stops the member is told (the first warning, through the queue, from a probe
    address). A bounce that could not be read in time is recorded, never scored."""
    found, kind, status = list(report.found), report.kind, report.status
    if tag.startswith(PROBE_TAG):
        probe = tag[len(PROBE_TAG) :]
        return _probe_bounced(conn, mlist, message_row, probe, found, kind, notifier)
    candidates = [verp_member(tag), *found]
    member = next((a for a in candidates if a and db_subs.is_member(conn, mlist.id, a)), "")
    if not member:
        token = _LEAVE_TOKEN.search(report.unsubscribe)
        member = _by_token(conn, mlist, tokens.UNSUBSCRIBE, token.group(1)) if token else ""
    if kind == "hard" and status.startswith("5.7") and report.message_id:
        policy = db_bounces.author_policy(conn, mlist.id, report.message_id)
        if policy in dmarc.STRICT:  # the author's domain asks receivers to refuse: not the member
            kind = "policy"
    diagnostic = report.diagnostic or (f"not read: {report.problem}" if report.problem else "")
    bounce = _Seen(member, " ".join(found) or "no address found", kind, status, diagnostic)
    return _settle(conn, mlist, message_row, bounce, notifier)


PROBE_TAG = "probe."
WARNING_DAYS = 7
PROBE_DAYS = 3  # a probe that has not bounced after this long came through: the score resets


def probe_address(conn: Conn, mlist: MailingList, member: str) -> str:
    """LIST-bounces+probe.TOKEN@DOMAIN: a bounce to it names the member without trusting what
    the bounce says (the token is an HMAC, people/tokens.py)."""
    person = db_people.by_address(conn, member)
    if person is None:
        return render.sub_address(mlist, "bounces")
    token = tokens.member_token(
        db_site.secret(conn), tokens.PROBE, mlist.address, member, person.id
    )
    return render.sub_address(mlist, "bounces", PROBE_TAG + token)


def _probe_bounced(
    conn: Conn,
    mlist: MailingList,
    message_row: int,
    token: str,
    found: list[str],
    kind: str,
    notifier: Notifier | None,
) -> str:
    """A bounce to a probe address: only the member's own mail system could have it (the token
    is an HMAC), so it confirms what forged bounces alone never may: delivery stops now."""
    member = _by_token(conn, mlist, tokens.PROBE, token)
    person = db_people.by_address(conn, member) if member else None
    current = db_bounces.score_of(conn, mlist.id, member) if person is not None else None
    outcome = "a probe bounce naming no member"
    if person is not None and current is not None:
        if current.status == "enabled" and current.probe_sent_at:
            db_bounces.disable(conn, mlist.id, member, "bounces")
            db_audit.record(
                conn, clock.stamp(), "bounces", "members.disable", mlist.address,
                f"{member}: the probe bounced (score {current.score:g})",
            )  # fmt: skip
            if notifier is not None:
                warn(conn, mlist, notifier, member, message_row)
            outcome = f"the probe to {member} bounced: delivery disabled"
        elif db_bounces.probe_bounced(conn, mlist.id, person.id):
            outcome = f"the probe to {member} bounced: delivery stays disabled"
    db_bounces.record(
        conn, mlist.id, message_row,
        db_bounces.Bounce(member, " ".join(found), kind, "", "probe", False, clock.stamp()),
    )  # fmt: skip
    log.info("bounce on %s: %s", mlist.address, outcome)
    return outcome


@dataclass(frozen=True, slots=True)
class _Seen:
    member: str  # '' when it matches no member
    found: str
    kind: str
    status: str
    diagnostic: str


def _settle(
    conn: Conn,
    mlist: MailingList,
    message_row: int,
    seen: _Seen,
    notifier: Notifier | None,
) -> str:
    """Score (hard and soft only), record, log; returns what was done."""
    now = clock.now()
    scored = probe = False
    if not seen.member:
        outcome = f"{seen.kind} bounce matching no member ({seen.found})"
    elif seen.kind == "policy":
        outcome = f"policy rejection for {seen.member} (the author's doing): not scored"
    elif seen.kind in {"hard", "soft"}:
        scored, probe, outcome = _score(conn, mlist, seen.member, seen.kind, now)
    else:
        outcome = f"unreadable bounce for {seen.member}: not scored"
    db_bounces.record(
        conn, mlist.id, message_row,
        db_bounces.Bounce(
            seen.member, seen.found, seen.kind, seen.status, seen.diagnostic, scored, clock.iso(now)
        ),
    )  # fmt: skip
    if probe and notifier is not None:
        notifier.send(
            conn, mlist, message_row, seen.member, "bounce-probe", capped=False,
            envelope_from=probe_address(conn, mlist, seen.member),
        )  # fmt: skip
    log.info("bounce on %s: %s", mlist.address, outcome)
    return outcome


def _score(
    conn: Conn, mlist: MailingList, member: str, kind: str, now: datetime
) -> tuple[bool, bool, str]:
    """(scored, a probe is to be sent now, what happened). A bounce is anyone's to forge, so a
    score at the threshold disables nothing by itself: it sends a probe from a VERP address
    whose token only the member's copy carries, and only a bounce of that disables delivery
    (_probe_bounced). A probe that comes through resets the score (review)."""
    current = db_bounces.score_of(conn, mlist.id, member)
    if current is None:
        return False, False, f"{kind} bounce for {member}, no longer a member"
    score = current.score
    if current.last_bounce_at:
        last = clock.parse(current.last_bounce_at)
        if last.date() == now.date():
            return False, False, f"{kind} bounce for {member}: already scored today ({score:g})"
        if now - last > timedelta(days=mlist.bounce_stale_days):
            score = 0.0  # no bounce for a while: start again
    score += HARD if kind == "hard" else SOFT
    db_bounces.set_score(conn, mlist.id, member, score, clock.iso(now))
    if score >= mlist.bounce_threshold and current.status == "enabled":
        if current.probe_sent_at:
            return True, False, f"{kind} bounce for {member}: score {score:g}, probe pending"
        db_bounces.probe_sent(conn, mlist.id, member, clock.iso(now))
        return True, True, f"{kind} bounce for {member}: score {score:g}, probe sent"
    return True, False, f"{kind} bounce for {member}: score {score:g}"


_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


def refused(
    conn: Conn,
    mlist: MailingList,
    message_row: int,
    address: str,
    reply: str,
    notifier: Notifier | None = None,
) -> str:
    """A relay's permanent (5xx) refusal of one member at SMTP time: the same bounce as a DSN
    would bring, recorded and scored the same way (policy refusals never scored)."""
    found = _ENHANCED.search(reply)
    status = found.group(1) if found else reply[:3]
    kind = "policy" if bouncereport.is_policy(status, reply) else "hard"
    address = address.lower()
    member = address if db_subs.is_member(conn, mlist.id, address) else ""
    seen = _Seen(member, address, kind, status, reply[:500])
    return _settle(conn, mlist, message_row, seen, notifier)


def warn(conn: Conn, mlist: MailingList, notifier: Notifier, member: str, cause_row: int) -> None:
    """The member's next warning, sent from their probe address: the first says delivery is
    paused (`disabled`), the later ones (`bounce-warning`) count down to removal."""
    count = db_bounces.warned(conn, mlist.id, member, clock.stamp())
    notifier.send(
        conn, mlist, cause_row, member, "disabled" if count == 1 else "bounce-warning",
        capped=False, envelope_from=probe_address(conn, mlist, member),
        warnings_left=max(mlist.bounce_warnings - count, 0), removal=mlist.bounce_warnings > 0,
        days=WARNING_DAYS,
    )  # fmt: skip


def review(conn: Conn, mlist: MailingList, notifier: Notifier, now: datetime) -> list[str]:
    """The weekly round for members disabled by bounces (run hourly), and the scores of members
    whose probe came through; returns what was done."""
    done: list[str] = []
    for address in db_bounces.probed_before(
        conn, mlist.id, clock.iso(now - timedelta(days=PROBE_DAYS))
    ):
        db_bounces.enable(conn, mlist.id, address)  # score and probe reset; still enabled
        done.append(f"the probe to {address} came through: bounce score reset")
    for member in db_bounces.disabled_by_bounces(conn, mlist.id):
        cause = db_bounces.last_row(conn, mlist.id, member.address)
        if member.warnings_sent == 0:  # disabled before warnings existed, or by hand
            if cause is not None:
                warn(conn, mlist, notifier, member.address, cause)
                done.append(f"warned {member.address}")
            continue
        if now - clock.parse(member.last_warning_at) < timedelta(days=WARNING_DAYS):
            continue
        at = clock.iso(now)
        if not member.probe_bounced:
            db_bounces.enable(conn, mlist.id, member.address)
            db_audit.record(
                conn, at, "bounces", "members.enable", mlist.address,
                f"{member.address}: the probe sent {member.last_warning_at} did not bounce",
            )  # fmt: skip
            done.append(f"enabled {member.address}")
        elif mlist.bounce_warnings and member.warnings_sent >= mlist.bounce_warnings:
            db_subs.delete(conn, mlist.id, member.address)
            db_audit.record(
                conn, at, "bounces", "members.remove", mlist.address,
                f"{member.address}: still bouncing after {member.warnings_sent} warnings",
            )  # fmt: skip
            done.append(f"removed {member.address}")
        elif cause is not None:
            warn(conn, mlist, notifier, member.address, cause)
            done.append(f"warned {member.address}")
    for line in done:
        log.info("bounces on %s: %s", mlist.address, line)
    return done

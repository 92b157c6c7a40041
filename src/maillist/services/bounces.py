"""Bounces to LIST-bounces@ and LIST-bounces+LOCAL=DOMAIN@: understood with flufl.bounce,
matched to a member (the VERP address first, then the addresses the parser found), scored, and
past the list's threshold the member's delivery is disabled. Never redistributed.

A rejection caused by the author, not the member (a 5.7.x status whose diagnostic names DMARC, a
policy, spam or authentication) is recorded as `policy` and never scored: lists that disable
members for their authors' DMARC failures lose innocent members by the hundred."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import Message
from email.policy import compat32

from flufl.bounce import all_failures

from maillist import clock
from maillist.db import audit as db_audit
from maillist.db import bounces as db_bounces
from maillist.db import subscriptions as db_subs
from maillist.db.store import Conn
from maillist.models import MailingList

log = logging.getLogger("maillist.bounces")

HARD, SOFT = 1.0, 0.5
_POLICY = re.compile(
    r"dmarc|dkim|spf|polic|spam|blocked|authenticat|reputation|not accepted", re.IGNORECASE
)


def verp_member(tag: str) -> str:
    """LIST-bounces+anne=example.org@ -> anne@example.org ('' when the tag is not one)."""
    local, equals, domain = tag.rpartition("=")
    return f"{local}@{domain}".lower() if equals and local and "." in domain else ""


def understand(raw: bytes, tag: str) -> tuple[list[str], str, str, str]:
    """(addresses found, kind hard|soft|policy|unknown, status, diagnostic)."""
    msg = message_from_bytes(raw[: 1024 * 1024], policy=compat32)
    try:
        permanent, temporary = all_failures(msg)
    except Exception:  # a hostile or broken bounce: we learn nothing from it
        permanent, temporary = frozenset(), frozenset()
    found = sorted({a.decode("utf-8", "replace").lower() for a in (*permanent, *temporary) if a})
    status, diagnostic = _status(msg)
    if status.startswith("5.7") and _POLICY.search(diagnostic):
        kind = "policy"
    elif permanent or status.startswith("5"):
        kind = "hard"
    elif temporary or status.startswith("4"):
        kind = "soft"
    else:
        kind = "unknown"
    return found, kind, status, diagnostic


def _status(msg: Message) -> tuple[str, str]:
    """The first recipient's Status and Diagnostic-Code from a message/delivery-status part."""
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        for block in blocks if isinstance(blocks, list) else []:
            if isinstance(block, Message) and block.get("Status"):
                status = str(block.get("Status", "")).strip()
                diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
                return status[:20], diagnostic[:500]
    return "", ""


def process(
    conn: Conn,
    mlist: MailingList,
    message_row: int,
    raw: bytes,
    tag: str,
    on_disable: Callable[[str], None] | None = None,
) -> str:
    """Record and score one bounce; returns what was done, for the message's stored reasons.
    `on_disable(member)` tells the member (a notice through the queue) when delivery stops."""
    found, kind, status, diagnostic = understand(raw, tag)
    candidates = [verp_member(tag), *found]
    member = next((a for a in candidates if a and db_subs.is_member(conn, mlist.id, a)), "")
    bounce = _Seen(member, " ".join(found) or "no address found", kind, status, diagnostic)
    return _settle(conn, mlist, message_row, bounce, on_disable)


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
    on_disable: Callable[[str], None] | None,
) -> str:
    """Score (hard and soft only), record, log; returns what was done."""
    now = clock.now()
    scored = disabled = False
    if not seen.member:
        outcome = f"{seen.kind} bounce matching no member ({seen.found})"
    elif seen.kind == "policy":
        outcome = f"policy rejection for {seen.member} (the author's doing): not scored"
    elif seen.kind in {"hard", "soft"}:
        scored, disabled, outcome = _score(conn, mlist, seen.member, seen.kind, now)
    else:
        outcome = f"unreadable bounce for {seen.member}: not scored"
    db_bounces.record(
        conn, mlist.id, message_row,
        db_bounces.Bounce(
            seen.member, seen.found, seen.kind, seen.status, seen.diagnostic, scored, clock.iso(now)
        ),
    )  # fmt: skip
    if disabled and on_disable is not None:
        on_disable(seen.member)
    log.info("bounce on %s: %s", mlist.address, outcome)
    return outcome


def _score(
    conn: Conn, mlist: MailingList, member: str, kind: str, now: datetime
) -> tuple[bool, bool, str]:
    """(scored, delivery now disabled, what happened)."""
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
        db_bounces.disable(conn, mlist.id, member, "bounces")
        db_audit.record(
            conn, clock.iso(now), "bounces", "members.disable", mlist.address,
            f"{member} score={score:g}",
        )  # fmt: skip
        return True, True, f"{kind} bounce for {member}: score {score:g}, delivery disabled"
    return True, False, f"{kind} bounce for {member}: score {score:g}"


_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


def refused(
    conn: Conn,
    mlist: MailingList,
    message_row: int,
    address: str,
    reply: str,
    on_disable: Callable[[str], None] | None = None,
) -> str:
    """A relay's permanent (5xx) refusal of one member at SMTP time: the same bounce as a DSN
    would bring, recorded and scored the same way (policy refusals never scored)."""
    found = _ENHANCED.search(reply)
    status = found.group(1) if found else reply[:3]
    kind = "policy" if status.startswith("5.7") and _POLICY.search(reply) else "hard"
    address = address.lower()
    member = address if db_subs.is_member(conn, mlist.id, address) else ""
    seen = _Seen(member, address, kind, status, reply[:500])
    return _settle(conn, mlist, message_row, seen, on_disable)

"""What a bounce says: the addresses that failed, hard or soft, the DSN's status and diagnostic,
and the returned copy's Message-ID and List-Unsubscribe. Pure: bytes in, a Report out.

flufl.bounce's detectors are regexes over whatever a stranger sent to LIST-bounces@ (one of
them is cubic on a line of `<`), so `read` runs in the intake sandbox under the parse budget
(services/sandbox.py), never on the event loop; a bounce that blows the budget is recorded as
unreadable and never scored."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import compat32

from flufl.bounce import all_failures

MAX_BOUNCE = 1024 * 1024  # a bounce is read up to here; what follows is the returned copy's body
_POLICY = re.compile(
    r"dmarc|dkim|spf|polic|spam|blocked|authenticat|reputation|not accepted", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class Report:
    found: tuple[str, ...] = ()  # the failed addresses the detectors found, lower case
    kind: str = "unknown"  # hard | soft | policy | unknown
    status: str = ""  # the DSN's Status (5.1.1), '' without one
    diagnostic: str = ""
    message_id: str = ""  # the returned copy's Message-ID, when the bounce includes its header
    unsubscribe: str = ""  # its List-Unsubscribe: a personalised copy names its member's token
    problem: str = ""  # why the bounce could not be read ('' when it was)


def unreadable(problem: str) -> Report:
    return Report(problem=problem)


def is_policy(status: str, diagnostic: str) -> bool:
    """A 5.7.x refusal whose words blame the author (DMARC, a policy, spam), not the member."""
    return status.startswith("5.7") and bool(_POLICY.search(diagnostic))


def read(raw: bytes) -> Report:
    msg = message_from_bytes(raw[:MAX_BOUNCE], policy=compat32)
    try:
        temporary, permanent = all_failures(msg)  # flufl.bounce's order: temporary first
    except Exception:  # a hostile or broken bounce: we learn nothing from it
        temporary, permanent = frozenset(), frozenset()
    found = sorted({a.decode("utf-8", "replace").lower() for a in (*permanent, *temporary) if a})
    status, diagnostic = _status(msg)
    if is_policy(status, diagnostic):
        kind = "policy"
    elif status[:1] in {"4", "5"}:  # the DSN's own status says which
        kind = "hard" if status.startswith("5") else "soft"
    elif permanent:
        kind = "hard"
    elif temporary:
        kind = "soft"
    else:
        kind = "unknown"
    message_id, unsubscribe = _returned(msg)
    return Report(tuple(found), kind, status, diagnostic, message_id, unsubscribe)


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


def _returned(msg: Message) -> tuple[str, str]:
    """The returned copy's Message-ID and List-Unsubscribe (message/rfc822 or
    text/rfc822-headers part), if the bounce carries them."""
    for part in msg.walk():
        kind = part.get_content_type()
        headers: object = None
        if kind == "message/rfc822":
            inner = part.get_payload()
            headers = inner[0] if isinstance(inner, list) and inner else None
        elif kind == "text/rfc822-headers":
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                headers = message_from_bytes(text[:65536], policy=compat32)
        if isinstance(headers, Message):
            mid = str(headers.get("Message-ID", "")).strip().strip("<>")[:500]
            return mid, str(headers.get("List-Unsubscribe", ""))[:2000]
    return "", ""

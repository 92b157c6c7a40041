"""mboxrd (the mbox variant that loses nothing): writing messages as one file, and what an
imported message lacks. Pure.

Each message gets a `From ` separator line; a body line that starts with `From ` after any
number of `>` gets one more `>` (and a reader removes one), so every message reads back byte for
byte (with LF line endings, as mbox files have them)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import compat32
from email.utils import parsedate_to_datetime

from maillist.errors import MessageRefused
from maillist.mail import mailparse
from maillist.mail.mailparse import Limits

_FROM = re.compile(rb"(?m)^(>*From )")


def entry(
    raw: bytes, sender: str = "MAILER-DAEMON", when: str = "Thu Jan  1 00:00:00 1970"
) -> bytes:
    text = raw.replace(b"\r\n", b"\n")
    if not text.endswith(b"\n"):
        text += b"\n"
    safe_sender = re.sub(r"\s", "", sender) or "MAILER-DAEMON"
    return f"From {safe_sender} {when}\n".encode() + _FROM.sub(rb">\1", text) + b"\n"


def mboxrd(raws: list[bytes]) -> bytes:
    return b"".join(entry(raw) for raw in raws)


_CODE = re.compile(r"^\d{3}[ -](\d\.\d{1,3}\.\d{1,3} )?")


def refusal(reply: str) -> str:
    """An SMTP refusal as an import reports it: what is wrong with the message, not a reply
    code. A message that does not start with a header is most often the tail of the one
    before it, cut at a body line starting "From " that the mbox's writer did not escape."""
    text = _CODE.sub("", reply).strip()
    if "has no header" in text or "line 1 is not a header field" in text:
        return (
            "it does not begin with a header: probably the rest of the message before it, "
            "split where a line of its body starts with an unescaped 'From '"
        )
    return text


def defects(where: str, raw: bytes, limits: Limits, domain: str) -> list[str]:
    """What a dry run reports of one message."""
    found: list[str] = []
    try:
        parsed = mailparse.prepare(raw, limits, received_at=datetime.now(UTC), domain=domain)
    except MessageRefused as exc:
        return [f"{where}: cannot be imported: {refusal(str(exc))}"]
    if parsed.minted_id:
        found.append(f"{where}: no Message-ID (one is made from its bytes)")
    head = message_from_bytes(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n", policy=compat32)
    date = head.get("Date")
    try:
        if date is None or parsedate_to_datetime(str(date)) is None:
            raise ValueError
    except (TypeError, ValueError, IndexError):
        found.append(f"{where}: bad or missing Date ({str(date or '')[:60]!r})")
    body = message_from_bytes(raw, policy=compat32)
    for part in body.walk():
        if part.is_multipart():
            continue
        try:
            data = part.get_payload(decode=True)
            if part.get_content_maintype() == "text" and isinstance(data, bytes):
                data.decode(part.get_content_charset() or "us-ascii")
        except (LookupError, UnicodeDecodeError) as exc:
            found.append(f"{where}: a part that does not decode ({type(exc).__name__})")
            break
    return found

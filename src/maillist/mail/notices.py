"""The mail maillist writes on its own (confirmations, welcomes, results, moderation notices):
built here, as bytes ready for the outbound queue. Pure.

Every notice is `Auto-Submitted: auto-replied` (RFC 3834: no autoresponder answers it), carries
the list's `List-Id` and an `X-Loop` naming the list's -request address (so maillist never
answers its own notices), comes from LIST-request@, and is plain UTF-8 text. A moderator's
notice carries the held post, untouched, as a message/rfc822 part."""

from __future__ import annotations

import secrets
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime, make_msgid

from maillist.mail.render import list_id, sub_address
from maillist.models import MailingList

CRLF = b"\r\n"


def build(
    mlist: MailingList,
    to: str,
    subject: str,
    body: str,
    *,
    when: datetime,
    reply_to: str = "",
    in_reply_to: str = "",
    attach: bytes | None = None,
) -> bytes:
    # An address that is not ASCII is written as UTF-8 (RFC 6532; it goes with SMTPUTF8), never
    # as encoded words, which an address cannot hold.
    msg = EmailMessage(policy=SMTP if to.isascii() else SMTPUTF8)
    msg["From"] = f"{mlist.name} <{sub_address(mlist, 'request')}>"
    msg["To"] = to
    msg["Subject"] = " ".join(subject.split())[:200]
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = make_msgid("notice", domain=mlist.domain)
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = f"<{in_reply_to}>"
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Auto-Submitted"] = "auto-replied"
    msg["List-Id"] = list_id(mlist)
    msg["X-Loop"] = sub_address(mlist, "request")
    msg.set_content(body, charset="utf-8", cte="quoted-printable")
    data = msg.as_bytes()
    return data if attach is None else _with_attachment(data, attach)


def _with_attachment(data: bytes, attach: bytes) -> bytes:
    """The text notice as the first part of a multipart/mixed, the post as the second, its bytes
    exactly as received (assembled by hand: re-serialising a hostile post could change it)."""
    head, _, body = data.partition(CRLF + CRLF)
    outer: list[bytes] = []
    inner: list[bytes] = []
    for field in _fields(head):
        name = field.split(b":", 1)[0].strip().lower()
        if name in {b"content-type", b"content-transfer-encoding"}:
            inner.append(field)
        elif name != b"mime-version":
            outer.append(field)
    boundary = secrets.token_hex(16).encode()
    while boundary in attach:
        boundary = secrets.token_hex(16).encode()
    parts = [
        *outer,
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="' + boundary + b'"',
        b"",
        b"--" + boundary,
        *inner,
        b"",
        body.rstrip(CRLF),
        b"--" + boundary,
        b"Content-Type: message/rfc822",
        b"Content-Disposition: inline",
        b"Content-Transfer-Encoding: 8bit",
        b"",
        attach.rstrip(CRLF),
        b"--" + boundary + b"--",
        b"",
    ]
    return CRLF.join(parts)


def _fields(head: bytes) -> list[bytes]:
    fields: list[bytes] = []
    for line in head.split(CRLF):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += CRLF + line
        elif line:
            fields.append(line)
    return fields

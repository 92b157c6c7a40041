"""A digest as members receive it (RFC 1153 in MIME): a plain-text table of contents grouped by
thread, with each author's name and badges, then every post as a message/rfc822 part of a
multipart/digest, then the footer. Pure: posts and names in, bytes out."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from maillist.mail.render import list_id, sub_address
from maillist.models import MailingList


@dataclass(frozen=True, slots=True)
class Item:
    raw: bytes
    subject: str
    thread: str  # the thread's subject: the contents are grouped by it
    author: str  # the account's name (or the address's local part)
    badges: tuple[str, ...]
    date: str


def subject_line(mlist: MailingList, volume: int, issue: int) -> str:
    return f"{mlist.name} Digest, Vol {volume}, Issue {issue}"


def build(
    mlist: MailingList,
    items: Sequence[Item],
    volume: int,
    issue: int,
    contents: str,
    footer: str,
    *,
    when: datetime,
) -> bytes:
    """`contents` and `footer` are the rendered templates (templates/message/digest-*.txt.j2).

    The posts are never parsed: each goes into the multipart/digest as the bytes received
    (assembled by hand, as a moderator's notice carries a held post), so a digest costs time in
    proportion to its size whatever a sender wrote, and no re-serialisation changes a post."""
    outer = EmailMessage(policy=SMTP)
    outer["From"] = f"{mlist.name} <{mlist.address}>"
    outer["To"] = mlist.address
    outer["Reply-To"] = mlist.address
    outer["Subject"] = subject_line(mlist, volume, issue)
    outer["Date"] = format_datetime(when)
    outer["Message-ID"] = make_msgid(f"digest.{volume}.{issue}", domain=mlist.domain)
    outer["List-Id"] = list_id(mlist)
    outer["List-Post"] = f"<mailto:{mlist.address}>"
    outer["List-Unsubscribe"] = f"<mailto:{sub_address(mlist, 'leave')}>"
    outer["Precedence"] = "list"
    outer["X-Loop"] = mlist.address
    outer["MIME-Version"] = "1.0"
    eight_bit = any(not item.raw.isascii() for item in items)
    mixed, digest = _boundary(items), _boundary(items)
    cte = [b"Content-Transfer-Encoding: 8bit"] if eight_bit else []
    out = [
        bytes(outer).rstrip(CRLF),
        b'Content-Type: multipart/mixed; boundary="' + mixed + b'"',
        *cte, b"",
        b"--" + mixed, _text_part(contents),
        b"--" + mixed,
        b'Content-Type: multipart/digest; boundary="' + digest + b'"', *cte, b"",
    ]  # fmt: skip
    for item in items:
        out.append(b"--" + digest)
        if item.raw.isascii():
            out.append(b"")  # message/rfc822 is a digest part's default type
        else:
            out += [b"Content-Type: message/rfc822", b"Content-Transfer-Encoding: 8bit", b""]
        out.append(item.raw)  # the CRLF before the next delimiter belongs to the delimiter
    out += [b"--" + digest + b"--", b"--" + mixed, _text_part(footer), b"--" + mixed + b"--", b""]
    return CRLF.join(out)


CRLF = b"\r\n"


def _text_part(text: str) -> bytes:
    part = EmailMessage(policy=SMTP)
    part.set_content(text, charset="utf-8", cte="quoted-printable")
    del part["MIME-Version"]
    return part.as_bytes().rstrip(CRLF)


def _boundary(items: Sequence[Item]) -> bytes:
    """A boundary no post contains (so none can end a part early)."""
    while True:
        candidate = b"digest-" + secrets.token_hex(16).encode()
        if not any(candidate in item.raw for item in items):
            return candidate


def threads(items: Sequence[Item]) -> list[tuple[str, list[tuple[int, Item]]]]:
    """(thread subject, [(number in the digest, item)]) in the order threads first appear."""
    grouped: dict[str, list[tuple[int, Item]]] = {}
    for number, item in enumerate(items, start=1):
        grouped.setdefault(item.thread, []).append((number, item))
    return list(grouped.items())

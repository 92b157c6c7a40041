"""A digest as members receive it (RFC 1153 in MIME): a plain-text table of contents grouped by
thread, with each author's name and badges, then every post as a message/rfc822 part of a
multipart/digest, then the footer. Pure: posts and names in, bytes out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from maillist.models import MailingList
from maillist.render import list_id, sub_address


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
    """`contents` and `footer` are the rendered templates (templates/message/digest-*.txt.j2)."""
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
    outer.make_mixed()
    toc = EmailMessage(policy=SMTP)
    toc.set_content(contents, charset="utf-8", cte="quoted-printable")
    outer.attach(toc)
    digest = EmailMessage(policy=SMTP)
    digest.set_type("multipart/digest")
    for item in items:
        part = EmailMessage(policy=SMTP)
        part.set_type("message/rfc822")
        part.set_payload([_message(item.raw)])
        digest.attach(part)
    outer.attach(digest)
    end = EmailMessage(policy=SMTP)
    end.set_content(footer, charset="utf-8", cte="quoted-printable")
    outer.attach(end)
    return outer.as_bytes()


def _message(raw: bytes) -> EmailMessage:
    parsed = BytesParser(policy=SMTP).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return parsed


def threads(items: Sequence[Item]) -> list[tuple[str, list[tuple[int, Item]]]]:
    """(thread subject, [(number in the digest, item)]) in the order threads first appear."""
    grouped: dict[str, list[tuple[int, Item]]] = {}
    for number, item in enumerate(items, start=1):
        grouped.setdefault(item.thread, []).append((number, item))
    return list(grouped.items())

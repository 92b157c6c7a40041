"""The copy members receive, edited from the original bytes. Pure: bytes and values in, bytes out.

Header lines are added, dropped and replaced; everything else is left byte for byte as it came in
(re-folding and re-encoding a parsed message breaks signatures and has caused header injection,
CVE-2024-6923). The footer is appended in the body's own charset, or as a part of its own."""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.header import Header, decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import formataddr
from functools import lru_cache

from maillist import urls
from maillist.models import MailingList

CRLF = b"\r\n"
# Headers the list owns: whatever the sender wrote in them is dropped, so none can be forged.
OWNED = frozenset(
    {
        "list-id", "list-post", "list-help", "list-subscribe", "list-unsubscribe",
        "list-unsubscribe-post", "list-archive", "list-owner", "x-loop", "precedence",
        "x-maillist-badges", "x-maillist-author", "x-original-from", "archived-at",
    }
)  # fmt: skip
_CONTENT = (
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "content-description",
)
_REPLY = re.compile(r"^\s*((re|aw|sv|antw)(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9 !#$%&'*+/=?^_`{|}~.-]*$")
# C0 controls, DEL and C1 controls: never written into a header (NUL, ESC, BEL reach terminals).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Codecs Python knows that are not charsets a mail body can be written in.
_NOT_CHARSETS = frozenset(
    {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "utf-7"}
)
_ASCII_PROBE = "\r\n-- \r\n"
_PARAM = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+=[^\"\\\x00-\x1f\x7f]*$")


@dataclass(frozen=True, slots=True)
class Author:
    address: str
    name: str
    badges: tuple[str, ...] = ()
    verified: bool = True  # False: the post failed its From's authentication: no badges shown


@dataclass(frozen=True, slots=True)
class Copy:
    """What a list copy needs besides the original bytes."""

    mlist: MailingList
    author: Author
    message_id: str | None = None  # set when the server minted the id: the copy carries it
    footer: str | None = None
    unsubscribe_mailto: str = ""  # defaults to LIST-leave@domain
    unsubscribe_url: str = ""  # https one-click (RFC 8058) for a personalised copy
    extra: Sequence[tuple[str, str]] = field(default_factory=tuple)


@dataclass(slots=True)
class Parts:
    """A message split at its header: each field with its folded continuation lines, then the body."""

    fields: list[bytes]
    body: bytes

    @classmethod
    def split(cls, raw: bytes) -> Parts:
        end = raw.find(b"\r\n\r\n")
        head, body = (raw, b"") if end < 0 else (raw[: end + 2], raw[end + 4 :])
        fields: list[bytes] = []
        for line in head.split(CRLF)[:-1] if head.endswith(CRLF) else head.split(CRLF):
            if line[:1] in (b" ", b"\t") and fields:
                fields[-1] += line + CRLF
            else:
                fields.append(line + CRLF)
        return cls(fields, body)

    def names(self) -> list[str]:
        return [field_name(f) for f in self.fields]

    def drop(self, names: frozenset[str] | set[str] | tuple[str, ...]) -> list[bytes]:
        dropped = [f for f in self.fields if field_name(f) in names]
        self.fields = [f for f in self.fields if field_name(f) not in names]
        return dropped

    def get(self, name: str) -> bytes | None:
        return next((f for f in self.fields if field_name(f) == name), None)

    def replace(self, name: str, value: str) -> None:
        """Put `Name: value` where the first such field was (or at the end), dropping the others."""
        line = header_line(name, value)
        index = next((i for i, f in enumerate(self.fields) if field_name(f) == name.lower()), None)
        self.drop({name.lower()})
        if index is None:
            self.fields.append(line)
        else:
            self.fields.insert(index, line)

    def add(self, name: str, value: str) -> None:
        self.fields.append(header_line(name, value))

    def to_bytes(self) -> bytes:
        return b"".join(self.fields) + CRLF + self.body


def field_name(field: bytes) -> str:
    return field.split(b":", 1)[0].strip().decode("ascii", "replace").lower()


def header_line(name: str, value: str) -> bytes:
    """One header field from values we produced. Non-ASCII is RFC 2047-encoded; CR/LF and other
    control characters cannot get in (they become spaces)."""
    clean = " ".join(_CONTROL.sub(" ", value).split())
    if clean.isascii():
        return f"{name}: {clean}".encode("ascii") + CRLF
    encoded = Header(clean, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}".encode("ascii") + CRLF


def _value(field: bytes) -> str:
    text = field.split(b":", 1)[1] if b":" in field else b""
    return " ".join(text.decode("utf-8", "replace").split())


def decoded(field: bytes | None) -> str:
    if field is None:
        return ""
    value = _value(field)
    try:
        return " ".join(str(make_header(decode_header(value))).split())
    except Exception:  # RFC 2047 junk keeps its raw text
        return value


def prefixed(subject: str, prefix: str) -> str:
    """`[x]` once, after a single `Re: ` if the post is a reply: `Re: [x] Re: [x] hi` -> `Re: [x] hi`."""
    if not prefix:
        return subject
    text = re.sub(r"\s*" + re.escape(prefix) + r"\s*", " ", subject, flags=re.IGNORECASE).strip()
    reply = _REPLY.match(text)
    if reply:
        text = _REPLY.sub("", text).strip()
        text = re.sub(r"\s*" + re.escape(prefix) + r"\s*", " ", text, flags=re.IGNORECASE).strip()
    head = f"Re: {prefix}" if reply else prefix
    return f"{head} {text}".strip()


def list_id(mlist: MailingList) -> str:
    name = mlist.name if _SAFE_NAME.match(mlist.name) else '"' + mlist.name.replace('"', "'") + '"'
    return f"{name} <{mlist.local_part}.{mlist.domain}>"


def sub_address(mlist: MailingList, suffix: str, tag: str = "") -> str:
    return f"{mlist.local_part}-{suffix}{'+' + tag if tag else ''}@{mlist.domain}"


def list_headers(mlist: MailingList, author: Author, copy: Copy) -> list[tuple[str, str]]:
    """RFC 2919 List-Id and RFC 2369 List-* fields, Precedence, X-Loop, and the author's badges."""
    return [
        *_fields_before(mlist),
        *unsubscribe_fields(mlist, copy.unsubscribe_mailto, copy.unsubscribe_url),
        *_fields_after(mlist, author, copy),
    ]


def _fields_before(mlist: MailingList) -> list[tuple[str, str]]:
    return [
        ("List-Id", list_id(mlist)),
        ("List-Post", f"<mailto:{mlist.address}>"),
        ("List-Help", f"<mailto:{sub_address(mlist, 'request')}?subject=help>"),
        ("List-Subscribe", f"<mailto:{sub_address(mlist, 'join')}>"),
    ]


def unsubscribe_fields(mlist: MailingList, mailto: str, url: str) -> list[tuple[str, str]]:
    """List-Unsubscribe (the member's own `-leave+TOKEN` address and one-click `url` on a
    personalised copy) and, with a url, RFC 8058's List-Unsubscribe-Post: the fields that make
    one member's copy differ from another's (mail/personal.py)."""
    unsubscribe = [f"<mailto:{mailto or sub_address(mlist, 'leave')}>"]
    if url:
        unsubscribe.append(f"<{url}>")
    fields = [("List-Unsubscribe", ", ".join(unsubscribe))]
    if url:
        fields.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    return fields


def _fields_after(mlist: MailingList, author: Author, copy: Copy) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    if mlist.web_url and mlist.archive != "none":  # `serve --http-port` answers both
        headers.append(("List-Archive", f"<{mlist.web_url}{urls.list_url(mlist.address)}>"))
        if copy.message_id:  # RFC 5064
            url = mlist.web_url + urls.message_url(mlist.address, copy.message_id)
            headers.append(("Archived-At", f"<{url}>"))
    headers += [("Precedence", "list"), ("X-Loop", mlist.address)]
    headers.append(("X-Maillist-Author", author.address))
    if author.badges and author.verified:
        headers.append(("X-Maillist-Badges", ", ".join(author.badges)))
    return headers


def edited(
    raw: bytes,
    mlist: MailingList,
    message_id: str | None = None,
    *,
    mitigation: str = "",
    author: Author | None = None,
) -> Parts:
    """The edits every copy of a post shares: list-owned fields dropped, Message-ID if minted,
    subject prefix, Reply-To policy, and DMARC mitigation (`munge` or `wrap`, mail/dmarc.py).
    Personalised copies start from one of these per post."""
    parts = Parts.split(raw)
    parts.drop(OWNED)
    _drop_own_results(parts, mlist.domain)
    if message_id and parts.get("message-id") is None:
        parts.fields.insert(0, header_line("Message-ID", f"<{message_id}>"))
    if mlist.subject_prefix:
        current = parts.get("subject")
        subject = decoded(current)
        new = prefixed(subject, mlist.subject_prefix)
        if new != subject or current is None:
            parts.replace("Subject", new)
    original_reply_to = parts.get("reply-to")
    if mlist.reply_to == "list":
        parts.replace("Reply-To", mlist.address)
    elif mlist.reply_to != "author":
        parts.replace("Reply-To", mlist.reply_to)
    if mitigation in {"munge", "wrap"} and author is not None:
        _munge(parts, mlist, author, original_reply_to)
        if mitigation == "wrap":
            _wrap_original(parts, raw)
    elif author is not None:
        _true_name(parts, author)
    return parts


def _true_name(parts: Parts, author: Author) -> None:
    """The From's display name is the one an admin set for the author's account: a sender
    cannot dress up as someone else ("Anne - Licensee Badge" <mallory@...>) in what members
    see. Without an account name the sender's own stays, unless it holds an address (a name
    like "anne@example.org" on mallory's address), which is dropped."""
    current = parts.get("from")
    if current is None or not author.address or not author.address.isascii():
        return
    shown = decoded(current).rpartition("<")[0].strip().strip('"').strip()
    if author.name:
        if shown != author.name:
            parts.replace("From", _display(author.name, author.address))
    elif "@" in shown:
        parts.replace("From", author.address)


def _display(name: str, address: str) -> str:
    clean = " ".join(_CONTROL.sub(" ", name).split())
    if clean.isascii():
        return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + f'" <{address}>'
    return formataddr((clean, address), charset="utf-8")


def _drop_own_results(parts: Parts, authserv_id: str) -> None:
    """Authentication-Results naming this list's domain as the checker: only maillist may
    write those (the copy gets its own before ARC sealing); a sender's are forgeries."""
    own = authserv_id.lower().encode()
    parts.fields = [
        f
        for f in parts.fields
        if field_name(f) != "authentication-results"
        or f.split(b":", 1)[1].split(b";", 1)[0].strip().lower() != own
    ]


def munged_from(mlist: MailingList, author: Author) -> str:
    """`"Author Name via List Name" <LIST@DOMAIN>`: the name from the author's account (their
    address when they have none), never from what the sender wrote."""
    who = " ".join(_CONTROL.sub(" ", author.name or author.address).split())
    if not author.verified:
        who += " (unverified)"
    name = f"{who} via {mlist.name}"
    if name.isascii():  # always quoted, as readers expect of a display name with spaces
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + f'" <{mlist.address}>'
    return formataddr((name, mlist.address), charset="utf-8")


def _munge(
    parts: Parts, mlist: MailingList, author: Author, original_reply_to: bytes | None
) -> None:
    """From becomes the list (its own DKIM signature then aligns); the author is reached by
    Reply-To, or by Cc when the list's reply_to policy already uses Reply-To."""
    original = parts.get("from")
    if original is not None:
        parts.replace("X-Original-From", _value(original))
    parts.replace("From", munged_from(mlist, author))
    if mlist.reply_to == "author":
        if original_reply_to is None:
            parts.replace("Reply-To", author.address)
        return
    cc = parts.get("cc")
    others = _value(cc) if cc is not None else ""
    if author.address.lower() not in others.lower():
        parts.replace("Cc", f"{others}, {author.address}" if others else author.address)


_WRAP_KEEP = frozenset(
    {
        "from", "to", "cc", "reply-to", "subject", "date", "message-id", "in-reply-to",
        "references", "x-original-from",
    }
)  # fmt: skip


def _wrap_original(parts: Parts, raw: bytes) -> None:
    """The post, byte for byte, as a message/rfc822 part of a message the list writes: its
    fields are the munged ones, its threading fields the post's."""
    boundary = "maillist-wrap-" + hashlib.sha256(raw).hexdigest()[:24]
    parts.fields = [f for f in parts.fields if field_name(f) in _WRAP_KEEP]
    parts.add("MIME-Version", "1.0")
    parts.add("Content-Type", f'multipart/mixed; boundary="{boundary}"')
    original = raw if raw.endswith(CRLF) else raw + CRLF
    parts.body = (
        f"--{boundary}\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n".encode()
        + original
        + f"--{boundary}--\r\n".encode()
    )


def finish(base: Parts, copy: Copy) -> bytes:
    """List fields and footer on top of `base` (left as it was, so it can serve the next member)."""
    before, after = around_unsubscribe(base, copy)
    fields = unsubscribe_fields(copy.mlist, copy.unsubscribe_mailto, copy.unsubscribe_url)
    return b"".join([*before, *(header_line(n, v) for n, v in fields), *after])


def around_unsubscribe(base: Parts, copy: Copy) -> tuple[list[bytes], list[bytes]]:
    """The copy as `finish` makes it, cut where the List-Unsubscribe fields go: the header
    fields before them, and the fields after them followed by the blank line and the body (the
    footer appended first: it only touches Content-* fields and the body)."""
    parts = Parts(list(base.fields), base.body)
    if copy.footer:
        add_footer(parts, copy.footer)
    before = [*parts.fields, *(header_line(n, v) for n, v in _fields_before(copy.mlist))]
    after = [
        header_line(n, v) for n, v in (*_fields_after(copy.mlist, copy.author, copy), *copy.extra)
    ]
    return before, [*after, CRLF + parts.body]


CACHED_CONTENT_BYTES = 4096  # a real post's Content-* fields; larger ones are parsed each time


def _content(parts: Parts) -> Message:
    fields = b"".join(f for f in parts.fields if field_name(f).startswith("content-"))
    if len(fields) > CACHED_CONTENT_BYTES:  # the cache is keyed by sender input: bound its bytes
        return _parse_content(fields)
    return _content_of(fields)


def _parse_content(fields: bytes) -> Message:
    return BytesHeaderParser(policy=compat32).parsebytes(fields + CRLF)


@lru_cache(maxsize=256)
def _content_of(fields: bytes) -> Message:
    """Parsed Content-* fields; cached (at most 256 x 4 KiB), as every personalised copy of a post
    asks the same. Callers only read the result."""
    return _parse_content(fields)


def add_footer(parts: Parts, footer: str) -> None:
    """Append the footer without touching what is signed or encrypted, and never raise.

    text/plain in 7bit/8bit: appended in the body's charset, or the body is re-encoded to UTF-8 if
    the footer does not fit that charset. multipart/mixed: a new last part. Anything else (other
    multiparts, multipart/signed, quoted-printable or base64 text, non-text, a charset that is not
    a usable one): wrapped, untouched, as the first part of a new multipart/mixed. Encrypted bodies
    are left alone. Whatever hostile MIME or charset gets past those rules and makes a step fail,
    the post is wrapped untouched: one post must never stop delivery."""
    text = footer.replace("\r\n", "\n").replace("\n", "\r\n")
    if not text.endswith("\r\n"):
        text += "\r\n"
    fields, body = list(parts.fields), parts.body
    try:
        _add_footer(parts, text)
    except Exception:  # stdlib MIME/codec errors on hostile input: wrap untouched (see above)
        parts.fields, parts.body = fields, body
        _wrap(parts, text)


def _add_footer(parts: Parts, text: str) -> None:
    info = _content(parts)
    ctype = info.get_content_type()
    cte = str(info.get("content-transfer-encoding", "7bit")).strip().lower()
    if ctype in {"multipart/encrypted", "application/pkcs7-mime", "application/pgp-encrypted"}:
        return
    if ctype == "text/plain" and cte in {"7bit", "8bit", ""} and _append_text(parts, info, text):
        return
    boundary = info.get_boundary()
    if ctype == "multipart/mixed" and boundary and boundary.isascii():
        closing = b"\r\n--" + boundary.encode("ascii") + b"--"
        at = parts.body.rfind(closing)
        if at >= 0:
            part = _footer_part(boundary, text)
            parts.body = parts.body[:at] + part + parts.body[at:]
            return
    _wrap(parts, text)


def mail_charset(name: str | None) -> str | None:
    """The codec for a body's declared charset, if it is one a text body can really be written
    in and that keeps ASCII (CRLF, "-- ") as ASCII; None for junk, transforms and UTF-16/32."""
    try:
        codec = codecs.lookup((name or "us-ascii").strip().lower()).name
        if codec in _NOT_CHARSETS:
            return None
        if _ASCII_PROBE.encode(codec) != _ASCII_PROBE.encode("ascii"):
            return None
    except Exception:  # LookupError, ValueError (NUL in the name), UnicodeError ...
        return None
    return codec


def _append_text(parts: Parts, info: Message, text: str) -> bool:
    charset = mail_charset(info.get_content_charset())
    if charset is None:
        return False
    body = parts.body if parts.body.endswith(CRLF) or not parts.body else parts.body + CRLF
    try:
        parts.body = body + b"\r\n" + text.encode(charset)
        return True
    except UnicodeError:
        pass
    try:
        original = body.decode(charset)
    except UnicodeError:
        return False  # cannot re-encode what cannot be decoded: wrap instead
    parts.body = (original + "\r\n" + text).encode("utf-8", "surrogateescape")
    params = [
        (k, v) for k, v in info.get_params(header="content-type") or [] if k.lower() != "charset"
    ]
    extra = "".join(f'; {k}="{v}"' for k, v in params[1:] if _PARAM.match(f"{k}={v}"))
    parts.replace("Content-Type", f"text/plain; charset=utf-8{extra}")
    parts.replace("Content-Transfer-Encoding", "8bit")
    if parts.get("mime-version") is None:
        parts.add("MIME-Version", "1.0")
    return True


def _footer_part(boundary: str, text: str) -> bytes:
    return (
        f"\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\nContent-Disposition: inline\r\n\r\n"
    ).encode("ascii") + text.encode("utf-8").rstrip(b"\r\n")


def _wrap(parts: Parts, text: str) -> None:
    """The original content (its Content-* fields and body, byte for byte) becomes the first part."""
    moved = parts.drop(_CONTENT)
    if not moved:
        moved = [b"Content-Type: text/plain; charset=us-ascii\r\n"]
    boundary = "maillist-" + hashlib.sha256(parts.body).hexdigest()[:24]
    while boundary.encode() in parts.body:
        boundary = "maillist-" + hashlib.sha256(boundary.encode()).hexdigest()[:24]
    inner = b"".join(moved) + CRLF + parts.body
    parts.body = (
        b"This is a multi-part message in MIME format.\r\n--"
        + boundary.encode()
        + CRLF
        + inner
        + _footer_part(boundary, text)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    if parts.get("mime-version") is None:
        parts.add("MIME-Version", "1.0")
    parts.add("Content-Type", f'multipart/mixed; boundary="{boundary}"')

"""Read what ingest needs from a raw message, within hard caps. Pure: bytes in, values out.

Everything here treats the message as hostile. The raw bytes are never changed; caps are checked on
the bytes before the stdlib parser runs, so a parser bomb is refused before it can cost much."""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.errors import NonASCIILocalPartDefect
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from functools import lru_cache

import nh3

from maillist import clock, replies
from maillist.errors import BadAddress, MessageRefused
from maillist.mail import loops
from maillist.people.addresses import has_control, normalise


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int = 256 * 1024
    max_header_fields: int = 1000
    max_multipart_markers: int = 100  # "multipart/" in the raw bounds nesting depth and multiparts
    max_boundary_lines: int = 10_000
    max_parts: int = 1000
    max_depth: int = 20
    parse_seconds: float = 2.0


# Fields parsed with stdlib code whose cost grows with the square of the field's length: the From
# (email.headerregistry: 63 KB of dots took 11 s) and the top-level Content-Type (its parameters
# are re-parsed on each lookup: 64 KB of ";" took 0.7 s). Capped before any parser runs; each
# worst case at the cap costs about 15 ms. Real fields are a tenth of these.
FIELD_CAPS = {b"from": 512, b"content-type": 2048, b"content-transfer-encoding": 256}
# Decoded for display only (RFC 2047): the first this-many characters are decoded.
DECODE_CHARS = 4096


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    message_id: str  # without angle brackets; minted when the message had none
    minted_id: bool
    in_reply_to: str
    references: tuple[str, ...]
    subject: str
    sender: str | None  # the From address after a strict parse and validation, else None
    sender_name: str
    sender_problem: str
    date: str  # ISO 8601 UTC; the receive time when the Date header is missing or bad
    list_ids: tuple[str, ...] = ()
    x_loops: tuple[str, ...] = ()
    auto_submitted: str = ""
    precedence: str = ""
    autoreply: bool = False
    parts: int = 1
    defects: tuple[str, ...] = field(default_factory=tuple)
    body_digest: bytes = b""  # loops.body_digest: recognises the list's own copies coming back
    text: str = ""  # what search indexes: the first text part, as text, at most SEARCH_TEXT chars


_ID_TEXT = re.compile(r"<([^<>\s@]+@[^<>\s@]+)>")
MAX_ID = 250
MAX_REFERENCES = 100
AUTOREPLY_FIELDS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder")


def check_line_endings(raw: bytes) -> None:
    """Refuse a bare CR or bare LF anywhere, as Postfix does: they are how SMTP smuggling starts."""
    crlf = raw.count(b"\r\n")
    if raw.count(b"\n") != crlf:
        raise MessageRefused(replies.BARE_LF())
    if raw.count(b"\r") != crlf:
        raise MessageRefused(replies.BARE_CR())


def prescan(raw: bytes, limits: Limits) -> None:
    """Caps that must hold before the stdlib parser is allowed near the message."""
    end = raw.find(b"\r\n\r\n")
    header = raw if end < 0 else raw[: end + 2]
    if len(header) > limits.max_header_bytes:
        raise MessageRefused(replies.HEADER_TOO_LARGE(limit=limits.max_header_bytes))
    fields = split_fields(header)
    if len(fields) > limits.max_header_fields:
        raise MessageRefused(replies.TOO_MANY_FIELDS(limit=limits.max_header_fields))
    for number, line in enumerate(fields, start=1):
        name, colon, _ = line.partition(b":")
        if not colon or not _FIELD_NAME.match(name):
            # A line without a colon ends the header for every parser, so whatever follows
            # (loop markers included) would be read as body: refuse rather than guess.
            raise MessageRefused(replies.MALFORMED_HEADER(number=number))
        cap = FIELD_CAPS.get(name.strip().lower())
        if cap is not None and len(line) > cap:
            label = name.strip().decode("ascii", "replace")
            raise MessageRefused(replies.FIELD_TOO_LONG(field=label, limit=cap))
    if raw.lower().count(b"multipart/") > limits.max_multipart_markers:
        raise MessageRefused(replies.TOO_MANY_MULTIPARTS())
    if raw.count(b"\n--") > limits.max_boundary_lines:
        raise MessageRefused(replies.TOO_MANY_BOUNDARIES())


# RFC 5322 field names: printable ASCII but ":"; obsolete syntax allows spaces before the colon.
_FIELD_NAME = re.compile(rb"^[\x21-\x39\x3b-\x7e]+[ \t]*$")


def split_fields(header: bytes) -> list[bytes]:
    """The header's fields, each unfolded (continuation lines joined); a first line that is a
    continuation counts as a field of its own (and is then refused as malformed)."""
    fields: list[bytes] = []
    for line in header.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in b" \t" and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def is_multipart(raw: bytes) -> bool:
    end = raw.find(b"\r\n\r\n")
    return b"multipart/" in (raw if end < 0 else raw[: end + 2]).lower()


def prepare(raw: bytes, limits: Limits, *, received_at: datetime, domain: str) -> ParsedMessage:
    """Line endings, caps, then the parse. Raises MessageRefused with the SMTP reply to give."""
    check_line_endings(raw)
    prescan(raw, limits)
    return parse(raw, limits, received_at=received_at, domain=domain)


def parse(raw: bytes, limits: Limits, *, received_at: datetime, domain: str) -> ParsedMessage:
    """Parse a prescanned message. Raises MessageRefused only if it is unusable."""
    end = raw.find(b"\r\n\r\n")
    head = raw if end < 0 else raw[: end + 2]
    try:
        if b"multipart/" in head.lower():
            msg = message_from_bytes(raw, policy=compat32)
        else:  # one part: its body needs no parsing, only the header does
            msg = BytesHeaderParser(policy=compat32).parsebytes(head)
    except Exception as exc:  # the stdlib parser is lenient; anything it raises is a refusal
        raise MessageRefused(replies.UNPARSABLE(error=type(exc).__name__)) from None
    parts, depth = _shape(msg)
    if parts > limits.max_parts:
        raise MessageRefused(replies.TOO_MANY_PARTS(limit=limits.max_parts))
    if depth > limits.max_depth:
        raise MessageRefused(replies.TOO_DEEP(limit=limits.max_depth))
    if not msg.keys():
        raise MessageRefused(replies.NO_HEADER())

    message_id = _first_id(_text(msg, "Message-ID"))
    minted = message_id is None
    if message_id is None:
        # Deterministic, so a client re-sending the same bytes is recognised as a duplicate.
        message_id = f"{hashlib.sha256(raw).hexdigest()[:32]}@{domain}"
    refs = _ids(_text(msg, "References"))
    irt_ids = _ids(_text(msg, "In-Reply-To"))
    references = tuple(r for r in dict.fromkeys(refs) if r != message_id)[-MAX_REFERENCES:]
    in_reply_to = next((i for i in reversed(irt_ids) if i != message_id), "")
    sender, name, problem = _sender(msg)
    return ParsedMessage(
        message_id=message_id,
        minted_id=minted,
        in_reply_to=in_reply_to,
        references=references,
        subject=_decoded(msg, "Subject"),
        sender=sender,
        sender_name=name,
        sender_problem=problem,
        date=_date(msg, received_at),
        list_ids=tuple(_decoded(msg, "List-Id", v) for v in _all(msg, "List-Id")),
        x_loops=tuple(_text_value(v).strip().lower() for v in _all(msg, "X-Loop")),
        auto_submitted=_text(msg, "Auto-Submitted").strip().lower(),
        precedence=_text(msg, "Precedence").strip().lower(),
        autoreply=any(msg.get(name) is not None for name in AUTOREPLY_FIELDS),
        parts=parts,
        defects=tuple(sorted({type(d).__name__ for d in msg.defects})),
        body_digest=loops.body_digest(raw),
        text=_search_text(msg, raw[end + 4 :] if end >= 0 else b""),
    )


SEARCH_TEXT = 64 * 1024


def _search_text(msg: Message, body: bytes) -> str:
    """The first inline text/plain part decoded (else the first text/html, its tags removed):
    what the archive's search finds a post by. Never raises: a part it cannot read gives ''."""
    try:
        if not msg.is_multipart():
            single = Message(policy=compat32)
            for name in ("Content-Type", "Content-Transfer-Encoding"):
                if msg.get(name) is not None:
                    single[name] = str(msg.get(name))
            single.set_payload(body[: SEARCH_TEXT * 4])
            parts = [single]
        else:
            parts = [p for p in msg.walk() if not p.is_multipart()][:100]
        for wanted in ("text/plain", "text/html"):
            for part in parts:
                if (
                    part.get_content_type() != wanted
                    or part.get_content_disposition() == "attachment"
                ):
                    continue
                payload = part.get_payload(decode=True)
                data = payload[: SEARCH_TEXT * 4] if isinstance(payload, bytes) else b""
                try:
                    text = data.decode(part.get_content_charset() or "utf-8", "replace")
                except LookupError:
                    text = data.decode("utf-8", "replace")
                if wanted == "text/html":
                    text = html.unescape(nh3.clean(text, tags=set()))
                return " ".join(text.split())[:SEARCH_TEXT]
    except Exception:  # stdlib MIME/codec and nh3 errors on hostile parts: no search text
        return ""
    return ""


def _shape(msg: Message) -> tuple[int, int]:
    """(number of parts, deepest nesting), iteratively: no recursion for a hostile tree."""
    count, deepest = 0, 0
    stack: list[tuple[Message, int]] = [(msg, 1)]
    while stack:
        part, depth = stack.pop()
        count += 1
        deepest = max(deepest, depth)
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((p, depth + 1) for p in payload if isinstance(p, Message))
    return count, deepest


def _all(msg: Message, name: str) -> list[object]:
    """The field's values as the parser kept them: 8-bit bytes as surrogate escapes (compat32's
    get_all would turn them into U+FFFD before we could read them as UTF-8, RFC 6532)."""
    wanted = name.lower()
    return [value for key, value in msg.raw_items() if key.lower() == wanted]


def _text_value(value: object) -> str:
    """A header value as text: UTF-8 (RFC 6532) read as UTF-8, anything else undecodable
    becomes U+FFFD, never an exception."""
    text = str(value)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _text(msg: Message, name: str) -> str:
    values = _all(msg, name)
    return _text_value(values[0]) if values else ""


def _decoded(msg: Message, name: str, value: object | None = None) -> str:
    """RFC 2047-decoded, unfolded, control characters removed, bounded (decode_header's cost
    grows with the square of a crafted field's length: only the first DECODE_CHARS count)."""
    raw = (_text(msg, name) if value is None else _text_value(value))[:DECODE_CHARS]
    try:
        text = str(make_header(decode_header(raw)))
    except Exception:  # RFC 2047 junk: unknown charset, bad base64 ... keep the raw text
        text = raw
    text = " ".join(text.split())
    if has_control(text):
        text = re.sub(r"[\x00-\x1f\x7f]", "", text)
    return text[:998]


def _first_id(value: str) -> str | None:
    match = _ID_TEXT.search(value)
    if match and len(match.group(1)) <= MAX_ID:
        return match.group(1)
    bare = value.strip()
    if bare and " " not in bare and "@" in bare and len(bare) <= MAX_ID and "<" not in bare:
        return bare.strip("<>")  # an id some clients send without angle brackets
    return None


def _ids(value: str) -> list[str]:
    return [m for m in _ID_TEXT.findall(value) if len(m) <= MAX_ID]


def _sender(msg: Message) -> tuple[str | None, str, str]:
    """From, parsed strictly (email.headerregistry, not parseaddr: CVE-2023-27043) and validated."""
    values = _all(msg, "From")
    if len(values) != 1:
        return None, "", "no From header" if not values else "more than one From header"
    return _parse_from(_text_value(values[0]))


@lru_cache(maxsize=16_384)
def _parse_from(raw: str) -> tuple[str | None, str, str]:
    """Cached by the header's text: regular posters send the same From line every time. The
    From is capped at FIELD_CAPS[b"from"] octets before it gets here, so the cache holds at most
    16,384 x 512 characters of sender input (8 MiB), however many senders try."""
    try:
        header = default_policy.header_factory("From", raw)
        addresses = header.addresses
    except Exception:  # headerregistry raises HeaderParseError, IndexError, ... on crafted input
        return None, "", "From header cannot be parsed"
    if len(addresses) != 1:
        return None, "", "From header must hold exactly one address"
    address = addresses[0]
    name = " ".join(str(address.display_name).split())[:200]
    # A UTF-8 local part is what RFC 6532 allows (the stdlib flags it, as RFC 5322 would).
    if any(not isinstance(d, NonASCIILocalPartDefect) for d in header.defects):
        return None, name, "From header is malformed"
    try:
        return normalise(address.addr_spec), name, ""
    except BadAddress as exc:
        return None, name, str(exc)


def _date(msg: Message, received_at: datetime) -> str:
    value = _text(msg, "Date")[:200]
    when: datetime | None = None
    if value:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            when = None
    if when is not None and when.tzinfo is None:
        # "-0000": UTC, its zone not known (RFC 5322 3.3; what email.utils.formatdate writes).
        # The stdlib leaves such a time naive; it is a real date all the same.
        when = when.replace(tzinfo=UTC)
    if when is None:
        when = received_at
    try:
        return clock.iso(when)
    except (OverflowError, ValueError):
        return clock.iso(received_at)

"""A copy for a relay that does not offer SMTPUTF8 (RFC 6531): its UTF-8 header fields (RFC 6532)
rewritten in ASCII, after RFC 6857. Pure. The body is never touched.

Unstructured fields (Subject, ...) become RFC 2047 encoded words. In address fields, a display
name is encoded and an IDN domain written as A-labels; an address whose local part is not ASCII
cannot be written at all, so it becomes an empty group named by the encoded address (RFC 6857
3.1.5: `=?utf-8?...?= :;`). A Message-ID that is not ASCII is replaced, in every field, by the
same ASCII id made from its hash, so downgraded copies still thread with each other."""

from __future__ import annotations

import hashlib
import re
from email.header import Header
from email.headerregistry import Address
from email.policy import default

import idna

CRLF = b"\r\n"
ADDRESS_FIELDS = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc", "x-original-from"})
ID_FIELDS = frozenset({"message-id", "in-reply-to", "references", "resent-message-id"})
_ID = re.compile(r"<([^<>\s]+)>")


def needs_smtputf8(sender: str, recipients: list[str] | tuple[str, ...], data: bytes) -> bool:
    """Whether the transaction needs SMTPUTF8: a non-ASCII envelope address or header field."""
    if not sender.isascii() or not all(r.isascii() for r in recipients):
        return True
    end = data.find(b"\r\n\r\n")
    return not (data if end < 0 else data[:end]).isascii()


def ascii_id(message_id: str) -> str:
    """The ASCII stand-in for a non-ASCII Message-ID (the same every time)."""
    if message_id.isascii():
        return message_id
    digest = hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:32]
    return f"{digest}.utf8@downgraded.invalid"


def _encoded(text: str, name: str) -> str:
    return Header(text, "utf-8", header_name=name).encode(linesep="\r\n")


def _domain(domain: str) -> str:
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        return domain.encode("ascii", "replace").decode("ascii")


def _address(address: Address, name: str) -> str:
    display = address.display_name
    if address.username.isascii():
        domain = _domain(address.domain)
        if not display:
            return f"{address.username}@{domain}"
        if display.isascii():
            return str(Address(display, address.username, domain))
        return f"{_encoded(display, name)} <{address.username}@{domain}>"
    label = f"{display} <{address.addr_spec}>" if display else address.addr_spec
    return f"{_encoded(label, name)} :;"


def _field(name: str, value: str) -> str:
    lower = name.lower()
    if lower in ID_FIELDS:
        return (
            _ID.sub(lambda m: f"<{ascii_id(m.group(1))}>", value)
            .encode("ascii", "replace")
            .decode()
        )
    if lower in ADDRESS_FIELDS:
        try:
            header = default.header_factory(name, value)
            return ", ".join(_address(a, name) for a in header.addresses)
        except Exception:  # not an address list after all: encoded as text
            pass
    return _encoded(" ".join(value.split()), name)


def downgrade(data: bytes) -> bytes:
    """`data` with every header field that is not ASCII rewritten in ASCII; the rest as it was."""
    end = data.find(b"\r\n\r\n")
    head, body = (data, b"") if end < 0 else (data[: end + 2], data[end + 2 :])
    if head.isascii():
        return data
    out: list[bytes] = []
    fields: list[bytes] = []
    for line in head.split(CRLF)[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += CRLF + line
        else:
            fields.append(line)
    for field in fields:
        if field.isascii() or b":" not in field:
            out.append(field + CRLF)
            continue
        raw_name, _, raw_value = field.partition(b":")
        name = raw_name.decode("ascii", "replace").strip()
        value = raw_value.decode("utf-8", "replace").strip()
        out.append(f"{name}: {_field(name, value)}".encode("ascii", "replace") + CRLF)
    return b"".join(out) + body

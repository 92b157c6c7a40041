"""DKIM signatures and ARC sets on the copies maillist sends (dkimpy), and new keys
(cryptography). Pure.

Signed with d= the list's domain, relaxed/relaxed, over the headers receivers look at and the list
headers maillist wrote, From signed twice (oversigned: no From can be added after signing).
Each copy first gets the list's Authentication-Results (what it found on receipt) and an ARC set
(RFC 8617: ARC-Authentication-Results, ARC-Message-Signature, ARC-Seal) continuing any chain the
post arrived with, then the DKIM signature. dkimpy's RSA is pure Python: about 8 ms per
RSA-2048 signature on the reference machine and three per copy, so the server seals a shared
copy once per post, and personalised copies in worker processes."""

from __future__ import annotations

import base64
import re

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type information
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SIGNED = (
    b"from", b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"in-reply-to",
    b"references", b"reply-to", b"mime-version", b"content-type", b"content-transfer-encoding",
    b"list-id", b"list-post", b"list-help", b"list-subscribe", b"list-unsubscribe",
    b"list-unsubscribe-post", b"list-archive",
)  # fmt: skip


def new_key() -> tuple[str, str]:
    """(private key PEM, TXT record value) for a new RSA-2048 key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}"


def txt_zone_line(selector: str, domain: str, txt: str) -> str:
    """The record as a zone-file line, the value split in strings of at most 255 characters."""
    chunks = " ".join(f'"{txt[i : i + 255]}"' for i in range(0, len(txt), 255))
    return f"{selector}._domainkey.{domain}. IN TXT ( {chunks} )"


def _present(data: bytes) -> set[bytes]:
    return {
        line.split(b":", 1)[0].strip().lower()
        for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        if line[:1] not in (b" ", b"\t") and b":" in line
    }


def arc_seal(data: bytes, selector: str, domain: str, private_key: str, results: str) -> bytes:
    """`data` with the list's Authentication-Results (`domain; results`) and an ARC set on top;
    without the ARC set if dkimpy cannot seal it (a chain past 50 instances, a hostile post)."""
    present = _present(data)
    if b"arc-seal" not in present:  # no chain to continue (a wrapped post hides its own)
        results = re.sub(r"\barc=\w+", "arc=none", results)
    field = f"Authentication-Results: {domain};\r\n {results}\r\n".encode("ascii", "replace")
    data = field + data
    headers = [h for h in SIGNED if h in present or h == b"from"]
    try:
        arc = dkim.arc_sign(
            data, selector.encode(), domain.encode(), private_key.encode(), domain.encode(),
            include_headers=headers,
        )  # fmt: skip
    except Exception:  # dkim.DKIMException, authres errors, a chain past its limit
        return data
    return b"".join(bytes(h) for h in arc) + data


def sign(
    data: bytes, selector: str, domain: str, private_key: str, results: str | None = None
) -> bytes:
    """`data` with a DKIM-Signature field on top (and first, with `results`, the ARC set:
    arc_seal); unchanged if dkimpy cannot sign it."""
    if results is not None:
        data = arc_seal(data, selector, domain, private_key, results)
    present = _present(data)
    headers = [h for h in SIGNED if h in present or h == b"from"]
    try:
        field = dkim.sign(
            data, selector.encode(), domain.encode(), private_key.encode(),
            canonicalize=(b"relaxed", b"relaxed"), include_headers=headers,
        )  # fmt: skip
    except Exception:  # dkim.DKIMException and anything a hostile post provokes: send unsigned
        return data
    return bytes(field) + data

"""DKIM signatures and ARC sets on the copies maillist sends (dkimpy), and new keys
(cryptography). Pure.

Signed with d= the list's domain, relaxed/relaxed, over the headers receivers look at and the list
headers maillist wrote, From signed twice (oversigned: no From can be added after signing).
Each copy first gets the list's Authentication-Results (what it found on receipt) and an ARC set
(RFC 8617: ARC-Authentication-Results, ARC-Message-Signature, ARC-Seal) continuing any chain the
post arrived with, then the DKIM signature.

dkimpy does the canonicalisation and the headers; its RSA is pure Python (8.7 ms per RSA-2048
signature here, three per copy). The RSA step is done by OpenSSL instead (cryptography: 0.4 ms):
`_openssl_rsa` replaces dkimpy's module-level `RSASSA_PKCS1_v1_5_sign`, which its gen_header
calls by that global name (dkimpy >= 1.1; tests/test_upstream_guard.py checks it still does).
PKCS#1 v1.5 signatures are deterministic: the bytes are the same as dkimpy's own (tested).

Personalised copies of one post differ only in header fields (mail/personal.py): a HeadSigner
hashes their body and canonicalises the shared fields once, and signs each copy over its own
fields with dkimpy's steps: per copy one RSA signature and a few hundredths of a millisecond."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type information
import dkim.crypto  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils
from dkim.canonicalization import CanonicalizationPolicy  # type: ignore[import-untyped]

from maillist.errors import MaillistError

SIGNED = (
    b"from", b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"in-reply-to",
    b"references", b"reply-to", b"mime-version", b"content-type", b"content-transfer-encoding",
    b"list-id", b"list-post", b"list-help", b"list-subscribe", b"list-unsubscribe",
    b"list-unsubscribe-post", b"list-archive",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Keys:
    """A list domain's signing keys: RSA always, Ed25519 (RFC 8463) when one was made."""

    domain: str
    selector: str
    rsa: str  # PEM
    ed25519_selector: str = ""
    ed25519: str = ""  # the base64 32-byte seed, as dkimpy reads it


def new_ed25519_key() -> tuple[str, str]:
    """(private seed, base64; TXT record value) for a new Ed25519 key (RFC 8463)."""
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return (
        base64.b64encode(seed).decode("ascii"),
        f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode('ascii')}",
    )


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


_HASHES: dict[str, hashes.HashAlgorithm] = {"sha256": hashes.SHA256(), "sha1": hashes.SHA1()}


@lru_cache(maxsize=16)
def _rsa_key(numbers: tuple[int, ...]) -> rsa.RSAPrivateKey:
    n, e, d, p, q, dmp1, dmq1, iqmp = numbers
    public = rsa.RSAPublicNumbers(e, n)
    return rsa.RSAPrivateNumbers(p, q, d, dmp1, dmq1, iqmp, public).private_key()


def _openssl_rsa(digest: Any, private_key: dict[str, int]) -> bytes:
    """dkimpy's RSASSA_PKCS1_v1_5_sign(hash object, parsed key), done by OpenSSL."""
    key = _rsa_key(tuple(private_key[k] for k in (
        "modulus", "publicExponent", "privateExponent", "prime1", "prime2", "exponent1",
        "exponent2", "coefficient",
    )))  # fmt: skip
    algorithm = _HASHES[str(digest.name).lower().replace("-", "")]
    return key.sign(digest.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm))


def ready() -> None:
    """Nothing: a signer process that ran this has imported what signs."""
    _use_openssl()


def _use_openssl() -> None:
    if dkim.RSASSA_PKCS1_v1_5_sign is not _openssl_rsa:
        dkim.RSASSA_PKCS1_v1_5_sign = _openssl_rsa


def _present(data: bytes) -> set[bytes]:
    return {
        line.split(b":", 1)[0].strip().lower()
        for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        if line[:1] not in (b" ", b"\t") and b":" in line
    }


def arc_seal(data: bytes, selector: str, domain: str, private_key: str, results: str) -> bytes:
    """`data` with the list's Authentication-Results (`domain; results`) and an ARC set on top;
    without the ARC set if dkimpy cannot seal it (a chain past 50 instances, a hostile post)."""
    _use_openssl()
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


class SigningFailed(MaillistError):
    """The list's DKIM signature could not be made: the copy must not go out unsigned."""


def sign(data: bytes, keys: Keys, results: str | None = None) -> bytes:
    """`data` with the list's signatures on top: first, with `results`, the ARC set
    (arc_seal), then the RSA DKIM-Signature, then the Ed25519 one if the domain has that key.
    A copy the RSA signature cannot be made for raises SigningFailed (its batch is deferred,
    or its fan-out job failed, with the reason: never sent unsigned in silence); an ARC set or
    an Ed25519 signature that cannot be made is left out (the copy is still signed)."""
    _use_openssl()
    if results is not None:
        data = arc_seal(data, keys.selector, keys.domain, keys.rsa, results)
    present = _present(data)
    headers = [h for h in SIGNED if h in present or h == b"from"]
    signed = _dkim(data, keys.selector, keys.domain, keys.rsa, headers, b"rsa-sha256")
    if signed is None:
        raise SigningFailed(f"the DKIM signature for {keys.domain} could not be made")
    if keys.ed25519:
        second = _dkim(
            signed, keys.ed25519_selector, keys.domain, keys.ed25519, headers, b"ed25519-sha256"
        )
        signed = second if second is not None else signed
    return signed


def _dkim(
    data: bytes, selector: str, domain: str, key: str, headers: list[bytes], algorithm: bytes
) -> bytes | None:
    try:
        field = dkim.sign(
            data, selector.encode(), domain.encode(), key.encode(),
            canonicalize=(b"relaxed", b"relaxed"), include_headers=headers,
            signature_algorithm=algorithm,
        )  # fmt: skip
    except Exception:  # dkim.DKIMException and anything a hostile post provokes
        return None
    return bytes(field) + data


RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")


def body_hash(body: bytes) -> bytes:
    """The bh= of a relaxed/relaxed signature over `body`: base64 SHA-256 of its canonical form
    (the same for rsa-sha256 and ed25519-sha256)."""
    return base64.b64encode(hashlib.sha256(RELAXED.canonicalize_body(body)).digest())


def signed_fields(head: bytes) -> tuple[bytes, ...]:
    """What the list signs of a copy with this header block (SIGNED, where present)."""
    present = _present(head + b"\r\n")
    return tuple(h for h in SIGNED if h in present or h == b"from")


@lru_cache(maxsize=16)
def _private(key: str, algorithm: bytes) -> Any:
    """dkimpy's parsed form of a key (its ASN.1 parser is pure Python: once per key)."""
    if algorithm == b"ed25519-sha256":
        import nacl.encoding  # dkimpy's own Ed25519 dependency
        import nacl.signing

        return nacl.signing.SigningKey(key.encode(), encoder=nacl.encoding.Base64Encoder)
    return dkim.crypto.parse_pem_private_key(key.encode())


Field = tuple[bytes, bytes]  # (name, value) as dkim.rfc822_parse gives them


def parsed(fields: bytes) -> list[Field]:
    """Header fields (each ending in CRLF) as dkimpy reads them."""
    headers, _ = dkim.rfc822_parse(fields + b"\r\n")
    return [(bytes(name), bytes(value)) for name, value in headers]


@dataclass(frozen=True, slots=True)
class HeadSigner:
    """DKIM signatures for copies of one post that differ only in some header fields (the
    member's List-Unsubscribe ones, mail/personal.py, which no shared field is named like): the
    body hash, and which fields each name in h= selects with their canonical forms, are made
    once, so a copy costs the canonical form of its own fields, one SHA-256 and one RSA
    signature. The steps are dkimpy's (select_headers, its relaxed canonicalisation, fold,
    RE_BTAG), in the order of its DKIM.gen_header: the field is the one dkim.sign makes for the
    same copy at the same second (tests/test_personal.py)."""

    keys: Keys
    include: tuple[bytes, ...]
    body_hash: bytes
    # What h= hashes, in order: a shared field's canonical "name:value", or (as a 1-tuple) the
    # name of a member field, filled in per copy.
    plan: tuple[bytes | tuple[bytes], ...]

    @classmethod
    def make(
        cls,
        keys: Keys,
        include: Sequence[bytes],
        body_hash: bytes,
        before: bytes,
        after: bytes,
        member: Sequence[bytes] = (b"list-unsubscribe", b"list-unsubscribe-post"),
    ) -> HeadSigner:
        shared = RELAXED.canonicalize_headers(parsed(before) + parsed(after))
        if any(name in member for name, _ in shared):
            raise ValueError("a shared field is named like a member's")
        gaps = [(name, b"") for name in member]  # where a member's fields would be selected
        selected = dkim.select_headers(
            RELAXED.canonicalize_headers(parsed(before)) + gaps
            + RELAXED.canonicalize_headers(parsed(after)),
            tuple(include),
        )  # fmt: skip
        plan: list[bytes | tuple[bytes]] = []
        for entry in selected:
            name, value = entry
            plan.append((name,) if any(entry is gap for gap in gaps) else name + b":" + value)
        return cls(keys, tuple(include), body_hash, tuple(plan))

    def sign(self, member: bytes) -> bytes:
        """The DKIM-Signature field(s) of the copy with these member fields: RSA, with the
        Ed25519 one above it when the domain has that key. Raises SigningFailed if the RSA one
        cannot be made; an Ed25519 one that cannot is left out (as `sign`)."""
        _use_openssl()
        try:
            own = dict(RELAXED.canonicalize_headers(parsed(member)))  # the lowest of a name
        except Exception as exc:  # a member field dkimpy cannot read
            raise SigningFailed(f"the DKIM signature for {self.keys.domain}: {exc}") from None
        hashed = b"".join(
            step if isinstance(step, bytes) else step[0] + b":" + own[step[0]]
            for step in self.plan
            if isinstance(step, bytes) or step[0] in own
        )
        keys = self.keys
        field = self._field(hashed, keys.selector, keys.rsa, b"rsa-sha256")
        if field is None:
            raise SigningFailed(f"the DKIM signature for {keys.domain} could not be made")
        if keys.ed25519:
            second = self._field(hashed, keys.ed25519_selector, keys.ed25519, b"ed25519-sha256")
            field = (second or b"") + field
        return field

    def _field(self, hashed: bytes, selector: str, key: str, algorithm: bytes) -> bytes | None:
        domain = self.keys.domain.encode()
        tags = [
            (b"v", b"1"), (b"a", algorithm), (b"c", RELAXED.to_c_value()), (b"d", domain),
            (b"i", b"@" + domain), (b"q", b"dns/txt"), (b"s", selector.encode()),
            (b"t", str(int(time.time())).encode("ascii")), (b"h", b" : ".join(self.include)),
            (b"bh", self.body_hash), (b"b", b"0" * 60),
        ]  # fmt: skip
        try:
            value = dkim.fold(b"; ".join(b"=".join(t) for t in tags), namelen=len(_NAME))
            value = dkim.RE_BTAG.sub(b"\\1", value)
            ((own, unsigned),) = RELAXED.canonicalize_headers([(_NAME, b" " + value)])
            digest = hashlib.sha256(hashed)
            digest.update(own + b":" + unsigned.rstrip())
            private = _private(key, algorithm)
            if algorithm == b"ed25519-sha256":
                signature = private.sign(digest.digest()).signature
            else:
                signature = _openssl_rsa(digest, private)
        except Exception:  # a key dkimpy cannot read, a digest too large for the modulus
            return None
        tags[-1] = (b"b", base64.b64encode(bytes(signature)))
        value = dkim.fold(b"; ".join(b"=".join(t) for t in tags) + b"\r\n", namelen=len(_NAME))
        return _NAME + b": " + bytes(value)


_NAME = b"DKIM-Signature"


def sign_each(signer: HeadSigner, members: Sequence[bytes]) -> list[bytes]:
    """A batch's signatures in one call (a signer process, delivery/personalised.py)."""
    return [signer.sign(fields) for fields in members]

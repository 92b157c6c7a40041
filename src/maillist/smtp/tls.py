"""Inbound STARTTLS for a server that is its domain's MX (behind Postfix, TLS is Postfix's job).

The certificate and key are read at start and again on SIGHUP, so a renewal needs no restart: a
new session uses the new pair, open ones keep theirs; a pair that does not load is logged and the
old one kept. TLS 1.2 and 1.3 only, forward-secret AEAD ciphers only."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

log = logging.getLogger("maillist.tls")
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


class TlsError(Exception):
    """The certificate or key cannot be used; the text says why, in one line."""


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.verify_mode = ssl.CERT_NONE  # senders are not asked for certificates
    try:
        context.load_cert_chain(str(cert), str(key))
    except FileNotFoundError as exc:
        raise TlsError(f"no such file: {exc.filename}") from None
    except PermissionError as exc:
        raise TlsError(f"cannot read {exc.filename}: permission denied") from None
    except ssl.SSLError as exc:
        raise TlsError(f"cannot use {cert} with {key}: {exc.reason or exc}") from None
    return context


class Certificates:
    """The context new sessions get; `reload()` (SIGHUP) swaps it for one read afresh."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert = cert
        self.key = key
        self.context = server_context(cert, key)

    def reload(self) -> bool:
        try:
            self.context = server_context(self.cert, self.key)
        except TlsError as exc:
            log.error("TLS certificate not reloaded, keeping the one in use: %s", exc)
            return False
        log.info("TLS certificate reloaded from %s", self.cert)
        return True


def received(helo: str, client: str, by: str, tls: ssl.SSLObject | None, when: str) -> bytes:
    """The trace field this hop adds (RFC 5321 4.4, RFC 3848 ESMTPS), with the TLS version and
    cipher when the session used STARTTLS."""
    safe_helo = "".join(c for c in helo if c.isalnum() or c in ".-[]:_")[:100] or "unknown"
    protocol = "ESMTPS" if tls is not None else "ESMTP"
    detail = ""
    if tls is not None:
        cipher = tls.cipher()
        detail = f" ({tls.version()} with cipher {cipher[0] if cipher else 'unknown'})"
    return (
        f"Received: from {safe_helo} ([{client}])\r\n\tby {by} (maillist) with {protocol}"
        f"{detail};\r\n\t{when}\r\n"
    ).encode("ascii", "replace")

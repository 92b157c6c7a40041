"""The last guard against mail loops: a digest of the body of every copy the list sends.

Loop markers (List-Id, X-Loop) catch a copy that comes back with its header intact. A copy whose
header was rewritten on the way (a forwarder that rebuilds it, a crafted post whose markers hid
behind a broken line) still carries the body the list wrote, footer included, and a post whose
body digest matches a copy sent lately is discarded as a loop. Whitespace at line ends and blank
lines at the end are ignored, as relays and forwarders change them."""

from __future__ import annotations

import hashlib

KEEP_DAYS = 7  # a copy that comes back later than this is no longer recognised by its body


def body_digest(raw: bytes) -> bytes:
    """16 bytes of SHA-256 over the body (everything after the first empty line), normalised."""
    end = raw.find(b"\r\n\r\n")
    body = b"" if end < 0 else raw[end + 4 :]
    lines = [line.rstrip(b" \t") for line in body.split(b"\r\n")]
    while lines and not lines[-1]:
        lines.pop()
    return hashlib.sha256(b"\n".join(lines)).digest()[:16]

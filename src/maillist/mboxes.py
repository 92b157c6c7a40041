"""mboxrd (the mbox variant that loses nothing): writing messages as one file. Pure.

Each message gets a `From ` separator line; a body line that starts with `From ` after any
number of `>` gets one more `>` (and a reader removes one), so every message reads back byte for
byte (with LF line endings, as mbox files have them)."""

from __future__ import annotations

import re

_FROM = re.compile(rb"(?m)^(>*From )")


def entry(
    raw: bytes, sender: str = "MAILER-DAEMON", when: str = "Thu Jan  1 00:00:00 1970"
) -> bytes:
    text = raw.replace(b"\r\n", b"\n")
    if not text.endswith(b"\n"):
        text += b"\n"
    safe_sender = re.sub(r"\s", "", sender) or "MAILER-DAEMON"
    return f"From {safe_sender} {when}\n".encode() + _FROM.sub(rb">\1", text) + b"\n"


def mboxrd(raws: list[bytes]) -> bytes:
    return b"".join(entry(raw) for raw in raws)

"""What a person typed in a message: the text part (or an HTML part's text), up to the
signature, without quoted text or the mail client's "On ... wrote:" line. Pure.

Members answer confirmations and moderators answer held-post notices from any mail client; these
helpers find the words they wrote among what their client added."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.policy import compat32
from html.parser import HTMLParser

_QUOTE = re.compile(r"^\s*>")
_ON_WROTE = re.compile(r"^On .* wrote:\s*$|^-+\s*Original Message\s*-+$", re.IGNORECASE)


def body_lines(raw: bytes, limit: int = 50) -> list[str]:
    """The first lines a person typed: the text part (or an HTML part's text), up to the
    signature, without quoted text or the client's "On ... wrote:" line."""
    text = _text_of(raw)
    out: list[str] = []
    for line in text.splitlines():
        if line.rstrip() == "--" or line.startswith("-- "):
            break
        if _QUOTE.match(line) or _ON_WROTE.match(line.strip()) or not line.strip():
            continue
        out.append(line.strip())
        if len(out) >= limit:
            break
    return out


def command_lines(subject: str, typed: list[str] | tuple[str, ...], limit: int) -> list[str]:
    """Commands in the subject (a reply's "Re:" dropped), then the lines typed in the body
    (body_lines), up to the first line that is not a command."""
    known = {"help", "subscribe", "join", "unsubscribe", "leave", "set", "info", "who"}
    subject = re.sub(r"^\s*((re|aw|sv|fwd?)\s*:\s*)+", "", subject, flags=re.I)
    candidates = ([subject.strip()] if subject.strip() else []) + list(typed)
    lines: list[str] = []
    for index, line in enumerate(candidates):
        word = line.split()[0].lower() if line.split() else ""
        if word not in known:
            if index == 0 and subject.strip():
                continue  # a subject that is not a command is only a subject
            if lines or index > 0:
                if not lines:
                    lines.append(line)  # one unknown command: answered with the help
                break
            continue
        lines.append(line)
    return lines[: limit + 1]


def _text_of(raw: bytes) -> str:
    """The first text/plain part, else the first text/html part's text; bounded."""
    try:
        msg = message_from_bytes(raw[: 256 * 1024], policy=compat32)
    except Exception:
        return ""
    html = None
    for part in msg.walk():
        if part.get_content_maintype() != "text":
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            text = payload.decode(charset, "replace")
        except LookupError:
            text = payload.decode("utf-8", "replace")
        if part.get_content_subtype() == "plain":
            return text[:20_000]
        if part.get_content_subtype() == "html" and html is None:
            html = text[:100_000]
    return _html_text(html) if html is not None else ""


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"style", "script", "blockquote"}:
            self._skip += 1
        if tag in {"br", "p", "div", "tr", "li"}:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"style", "script", "blockquote"} and self._skip:
            self._skip -= 1
        if tag in {"p", "div"}:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.chunks.append(data)


def _html_text(html: str) -> str:
    parser = _Text()
    try:
        parser.feed(html)
    except Exception:
        return ""
    return "".join(parser.chunks)[:20_000]

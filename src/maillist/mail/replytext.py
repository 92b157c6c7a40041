"""What a person typed in a message: the text part (or an HTML part's text), without what their
mail client added around it. Pure.

Members answer confirmations, moderators answer held-post notices and everyone writes commands
to -request from any mail client, and each client wraps the words differently:

- s-nail and mutt bottom-post by default: `Team <team-request@...> wrote:` (or `On ..., X
  wrote:`), the quoted notice, then the answer;
- Thunderbird and Gmail top-post over `On <date>, <name> wrote:` (Gmail wraps it over two lines
  when it is long) and the quote;
- Outlook top-posts over `-----Original Message-----`, or over a `From: ... Sent: ... To: ...`
  block (with an underscore rule before it, in its HTML too), and quotes nothing with `>`;
- Apple Mail quotes its attribution (`> On ... wrote:`); phones add `Sent from my iPhone`;
- signatures start with `-- ` or a bare `--`.

`body_lines` drops quoted lines, attributions and blank lines, and stops at a signature, at
the start of an original message an Outlook-style client copied in unquoted, or at a phone's
"sent from" line."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.policy import compat32
from html.parser import HTMLParser

_QUOTE = re.compile(r"^\s*(>|\|)")
# An attribution line: what a client writes above the text it quotes.
_WROTE = re.compile(
    r"(wrote|writes|schrieb|a écrit|escribió|scrisse|schreef|skrev|napisał|написал)\s*:\s*$",
    re.IGNORECASE,
)
_ON = re.compile(r"^(On|Am|Le|El|Il|Op|Den|W dniu)\s", re.IGNORECASE)
# Where the copy of an original message begins (Outlook, forwards, Apple Mail's forward).
_ORIGINAL = re.compile(
    r"^(-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original|"
    r"Forwarded message|Weitergeleitete Nachricht)\s*-{2,}|_{10,}|Begin forwarded message:)\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\*?(From|Von|De|Da|Van|Fra|Od)\s*:\*?\s", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\*?(Sent|Date|Gesendet|Datum|Envoyé|Enviado|Inviato|Verzonden|Sendt|Wysłano|To|An|À)"
    r"\s*:\*?\s",
    re.IGNORECASE,
)
_SENT_FROM = re.compile(r"^(Sent from my |Sent from Mail for|Get Outlook for |Von meinem )")


def body_lines(raw: bytes, limit: int = 50) -> list[str]:
    """The first lines a person typed (see the module's description)."""
    return typed_lines(_text_of(raw), limit)


def typed_lines(text: str, limit: int = 50) -> list[str]:
    lines = [line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    skip = 0
    for index, line in enumerate(lines):
        if skip:
            skip -= 1
            continue
        stripped = line.strip()
        if stripped in {"--", "-- "} or line.startswith("-- ") or _ORIGINAL.match(stripped):
            break
        if _SENT_FROM.match(stripped) or _outlook_header(lines, index):
            break
        if not stripped or _QUOTE.match(line):
            continue
        if _WROTE.search(stripped) and (_ON.match(stripped) or _quote_follows(lines, index)):
            continue
        if _ON.match(stripped) and index + 1 < len(lines) and _WROTE.search(lines[index + 1]):
            skip = 1  # Gmail's attribution, wrapped over two lines
            continue
        out.append(stripped)
        if len(out) >= limit:
            break
    return out


def copied_original(lines: list[str]) -> int | None:
    """Where an original message a client copied in unquoted begins (Outlook's
    `-----Original Message-----`, its underscore rule or `From: ... Sent: ...` block, a
    forward's marker), or None."""
    for index, line in enumerate(lines):
        if _ORIGINAL.match(line.strip()) or _outlook_header(lines, index):
            return index
    return None


def _quote_follows(lines: list[str], index: int) -> bool:
    """Whether the next non-blank line is quoted (or there is none): an attribution's mark."""
    for line in lines[index + 1 : index + 4]:
        if line.strip():
            return bool(_QUOTE.match(line))
    return True


def _outlook_header(lines: list[str], index: int) -> bool:
    """A `From: ...` line followed within three lines by `Sent:`/`Date:`/`To:`: the header of the
    message Outlook copied in below the answer (unquoted)."""
    if not _HEADER_FROM.match(lines[index].strip()):
        return False
    return any(_HEADER_NEXT.match(line.strip()) for line in lines[index + 1 : index + 4])


KNOWN = frozenset({"help", "subscribe", "join", "unsubscribe", "leave", "set", "info", "who"})


def command_lines(subject: str, typed: list[str] | tuple[str, ...], limit: int) -> list[str]:
    """Commands in the subject (a reply's "Re:" dropped), then the lines typed in the body
    (body_lines), up to and including the first line that is not a command (it is answered as
    one the list does not know, so nothing is ignored without a word); the same command in the
    subject and the body counts once."""
    subject = re.sub(r"^\s*((re|aw|sv|fwd?)\s*:\s*)+", "", subject, flags=re.I).strip()
    lines: list[str] = []
    if subject and _verb(subject) in KNOWN:
        lines.append(subject)
    for line in typed:
        if _verb(line) not in KNOWN:
            if lines or not subject:
                lines.append(line)
            break
        if line.lower() not in {seen.lower() for seen in lines}:
            lines.append(line)
        if len(lines) > limit:
            break
    return lines[: limit + 1]


def _verb(line: str) -> str:
    words = line.split()
    return words[0].lower().strip(".!:,") if words else ""


def answer_word(typed: list[str] | tuple[str, ...]) -> tuple[str, str]:
    """A moderator's answer: (approve | reject | discard | '', the rest of its line) from the
    first line typed; case and trailing punctuation do not matter ("Approve." is approve)."""
    first = typed[0] if typed else ""
    word, _, rest = first.partition(" ")
    return word.lower().strip(".!:,"), rest.strip()


def _text_of(raw: bytes) -> str:
    """The first text/plain part, else the first text/html part's text; bounded."""
    try:
        msg = message_from_bytes(raw[: 256 * 1024], policy=compat32)
    except Exception:  # the stdlib parser is lenient; anything it raises means no text
        return ""
    html = None
    for part in msg.walk():
        if part.get_content_maintype() != "text":
            continue
        if part.get_content_disposition() == "attachment":
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
    """An HTML reply's text: block elements make lines; quotes (blockquote, Gmail's quote div)
    are left out; Outlook's reply header (divRplyFwdMsg, the rule before it) ends the text."""

    SKIP = frozenset({"style", "script", "blockquote", "head", "title"})

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []
        self._skip = 0
        self._stack: list[str] = []
        self.ended = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.ended:
            return
        values = dict(attrs)
        marks = f"{values.get('id') or ''} {values.get('class') or ''}"
        if "divRplyFwdMsg" in marks or "appendonsend" in marks:
            self.ended = True  # Outlook: what follows is the message answered
            return
        skipping = tag in self.SKIP or "gmail_quote" in marks or "moz-cite-prefix" in marks
        if tag in {"br", "p", "div", "tr", "li", "hr"}:
            self.chunks.append("\n")
        if tag in {"br", "hr", "img", "meta", "link", "input"}:
            return
        self._stack.append(tag)
        if skipping or self._skip:
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if self.ended or tag not in self._stack:
            return
        while self._stack:
            open_tag = self._stack.pop()
            if self._skip:
                self._skip -= 1
            if open_tag == tag:
                break
        if tag in {"p", "div"}:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip and not self.ended:
            self.chunks.append(data)


def _html_text(html: str) -> str:
    parser = _Text()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser/_markupbase raise AssertionError on odd markup: no text
        return ""
    return "".join(parser.chunks)[:20_000]

"""A post's body as the archive shows it: HTML that no hostile mail can script. Pure.

The text/plain part of a multipart/alternative is preferred; plain text is escaped, its links made
clickable (`rel="nofollow ugc"`), each run of quoted (`>`) lines folded on its own and the
signature (after `-- `) folded. An HTML-only post is cleaned with nh3 (no script, style, event
handlers or forms); its remote images are dropped (they tell the sender who read it) and its
`cid:` images point at the archived part. Every other part is listed as an attachment."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser

import nh3

from maillist.mail import replytext

MAX_TEXT = 256 * 1024  # characters of a body shown; the rest is in the raw message
# An address as people write it in a text (an attribution, a signature, an Outlook From: line).
_ADDRESS = re.compile(
    r"(?<![\w.+%'-])([\w.+%'-]{1,64})@([A-Za-z0-9\u00a0-\uffff-]+(?:\.[A-Za-z0-9\u00a0-\uffff-]+)+)"
)


def hide_addresses(text: str) -> str:
    """Every address in `text` as `anne@…`: the archive publishes what people wrote, never
    where to mail them (a harvester reads archives too)."""
    if "@" not in text:  # most texts: one fast scan instead of the pattern at every character
        return text
    return _ADDRESS.sub(lambda m: f"{m.group(1)}@\u2026", text)


MAX_PARTS = 200
_URL = re.compile(r"\bhttps?://[^\s<>\"'()\[\]]+[^\s<>\"'()\[\].,;:!?]")
_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "del", "div", "em", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li", "ol", "p", "pre", "q", "s", "small",
    "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u",
    "ul",
}  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}


@dataclass(frozen=True, slots=True)
class Attachment:
    index: int  # the part's number in walk order: /msg/ID/part/INDEX
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True, slots=True)
class Body:
    html: str  # safe to put in a page as it is
    attachments: tuple[Attachment, ...]


def parse(raw: bytes) -> Message:
    """The message's structure. compat32 leaves headers as the strings they are (the default
    policy's header objects cost ~7x the whole parse of a short post); the few parameters read
    here (type, charset, disposition, file name) are parsed on their own."""
    return BytesParser(policy=policy.compat32).parsebytes(raw)


def leaves(message: Message) -> list[Message]:
    """The non-multipart parts in walk order (bounded): their index is their archive number."""
    found: list[Message] = []
    for part in message.walk():
        if not part.is_multipart():
            found.append(part)
            if len(found) >= MAX_PARTS:
                break
    return found


def render(raw: bytes, url: str) -> Body:
    """The body and attachment list of a stored post whose permalink is `url`: part `index`
    downloads from `url/part/index` (cid: images in HTML point there). Parses what a sender
    wrote, at a cost a crafted message can make quadratic: run in the display sandbox
    (services/sandbox.py) under a deadline, and `degraded` shown when it is blown."""

    def part_url(index: int) -> str:
        return f"{url}/part/{index}"

    try:
        message = parse(raw)
        parts = leaves(message)
    except Exception:  # the parser gave up: show the bytes as text
        text = raw.decode("utf-8", "replace")
        return Body(plain_html(text), ())
    chosen = _choose(message, parts)
    attachments = tuple(
        Attachment(i, filename(p, i), p.get_content_type(), _size(p))
        for i, p in enumerate(parts)
        if p is not chosen and not _twin(chosen, p)
    )
    if chosen is None:
        return Body("", attachments)
    text = hide_addresses(_text(chosen)[:MAX_TEXT])
    if chosen.get_content_type() == "text/html":
        cids = {
            str(p.get("Content-ID", "")).strip().strip("<>"): i
            for i, p in enumerate(parts)
            if p.get("Content-ID")
        }
        return Body(clean_html(text, cids, part_url), attachments)
    return Body(plain_html(text), attachments)


DEGRADED_TEXT = 64 * 1024


def degraded(raw: bytes, why: str) -> Body:
    """What is shown of a post that could not be rendered in time: its body as received,
    escaped, with a note; linear in the bytes shown, whatever they hold."""
    _, _, body = raw.partition(b"\r\n\r\n")
    text = hide_addresses(body[:DEGRADED_TEXT].decode("utf-8", "replace"))
    note = html.escape(f"This message could not be displayed ({why}). Its text as received:")
    return Body(f'<p class="degraded">{note}</p>\n<pre>{html.escape(text)}</pre>', ())


def part(raw: bytes, index: int) -> tuple[bytes, str, str] | None:
    """(bytes, content type, file name) of part `index` (walk order), None when there is none.
    Parses the post: run in the display sandbox, like `render`."""
    parts = leaves(parse(raw))
    if not 0 <= index < len(parts):
        return None
    found = parts[index]
    payload = found.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    return data, found.get_content_type(), filename(found, index)


def _choose(message: Message, parts: list[Message]) -> Message | None:
    """The first inline text/plain part, else the first inline text/html part."""
    for wanted in ("text/plain", "text/html"):
        for part in parts:
            if part.get_content_type() == wanted and part.get_content_disposition() != "attachment":
                return part
    return None


def _twin(chosen: Message | None, part: Message) -> bool:
    """The inline HTML beside the chosen text/plain (multipart/alternative): not an attachment."""
    return (
        chosen is not None
        and chosen.get_content_type() == "text/plain"
        and part.get_content_type() == "text/html"
        and part.get_content_disposition() != "attachment"
    )


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, "replace")
    except LookupError:  # an unknown charset
        return data.decode("utf-8", "replace")


def filename(part: Message, index: int) -> str:
    try:
        name = part.get_filename()
    except Exception:  # headerregistry raises IndexError, ... on crafted params: no name
        name = None
    if name and "=?" in name:  # RFC 2047 words in a file name (not standard, but common)
        with contextlib.suppress(Exception):  # a malformed word: the name as written
            name = str(make_header(decode_header(name)))
    clean = " ".join(str(name or "").split())[:200]
    return clean or f"part-{index}"


def _size(part: Message) -> int:
    payload = part.get_payload(decode=True)
    return len(payload) if isinstance(payload, bytes) else 0


def linkify(escaped: str) -> str:
    """Links in already-escaped text become anchors a crawler does not credit."""

    def anchor(match: re.Match[str]) -> str:
        url = match.group(0)
        return f'<a href="{url}" rel="nofollow ugc noopener">{url}</a>'

    return _URL.sub(anchor, escaped)


WRAPPED = 60  # a line at least this long was wrapped by the sender's client: reflowed


def _paragraphs(lines: list[str]) -> str:
    """Blank lines separate paragraphs; inside one, a line the client wrapped joins the next
    (so text reflows on a phone) and a short line keeps its break (addresses, lists, poems)."""
    out: list[str] = []
    block: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            block.append(line)
        elif block:
            text = ""
            for n, part in enumerate(block):
                if n:
                    text += " " if len(block[n - 1].rstrip()) >= WRAPPED else "<br>\n"
                text += linkify(html.escape(part.rstrip() if n < len(block) - 1 else part))
            out.append(f"<p>{text}</p>")
            block = []
    return "\n".join(out)


def plain_html(text: str) -> str:
    """Plain text as HTML: paragraphs, each run of quoted lines and the signature folded."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    signature: list[str] = []
    original: list[str] = []
    copied = replytext.copied_original(lines)  # Outlook's unquoted original, folded like a quote
    if copied is not None:
        lines, original = lines[:copied], lines[copied:]
    marks = [i for i, line in enumerate(lines) if line in {"-- ", "--"}]  # with or without space
    if marks:
        lines, signature = lines[: marks[-1]], lines[marks[-1] + 1 :]
    out: list[str] = []
    run: list[str] = []
    quoted = False
    for line in [*lines, None]:
        is_quote = line is not None and line.lstrip().startswith(">")
        if line is None or is_quote != quoted:
            if run and quoted:
                body = "\n".join(linkify(html.escape(x)) for x in run)
                out.append(
                    f'<details class="quote"><summary>{len(run)} quoted line'
                    f"{'s' if len(run) != 1 else ''}</summary><blockquote><pre>{body}</pre>"
                    "</blockquote></details>"
                )
            elif run:
                out.append(_paragraphs(run))
            run, quoted = [], is_quote
        if line is not None:
            run.append(line)
    if any(x.strip() for x in signature):
        body = "\n".join(linkify(html.escape(x)) for x in signature)
        out.append(
            f'<details class="signature"><summary>Signature</summary><pre>{body}</pre></details>'
        )
    if any(x.strip() for x in original):
        body = "\n".join(linkify(html.escape(x)) for x in original)
        out.append(
            '<details class="quote"><summary>The message this answers</summary>'
            f"<blockquote><pre>{body}</pre></blockquote></details>"
        )
    return "\n".join(x for x in out if x)


_EMPTY_IMG = re.compile(r"<img(?: (?:alt|width|height)=\"[^\"]*\")*>")


def clean_html(text: str, cids: dict[str, int], part_url: Callable[[int], str]) -> str:
    """An HTML body without anything that runs, tracks or submits."""

    def keep(tag: str, attribute: str, value: str) -> str | None:
        if tag == "img" and attribute == "src":
            if value.lower().startswith("cid:") and value[4:] in cids:
                return part_url(cids[value[4:]])
            return None  # a remote image: a tracking pixel as often as not
        if value.lower().startswith("cid:"):  # a cid: link anywhere else goes nowhere
            return None
        return value

    cleaned = nh3.clean(
        text,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        attribute_filter=keep,
        url_schemes={"http", "https", "cid"},  # cid: only as a part URL; no mailto: addresses
        link_rel="nofollow ugc noopener",
    )
    return _EMPTY_IMG.sub("", cleaned)


PUBLIC_FIELDS = ("from", "to", "cc", "subject", "date", "message-id", "in-reply-to", "references")
_IDS = frozenset({"message-id", "in-reply-to", "references"})


def public_copy(raw: bytes) -> bytes:
    """A post as an anonymous reader of a public archive gets it for `raw` or a thread's mbox:
    its identifying fields, then its text, with no address anywhere (`hide_addresses`) and
    its attachments listed by name. Message-IDs stay as written: threading needs them."""
    lines: list[str] = []
    try:
        message = parse(raw)
        for name in PUBLIC_FIELDS:
            for value in message.get_all(name, []):
                text = " ".join(str(value).split())
                lines.append(f"{name.title()}: {text if name in _IDS else hide_addresses(text)}")
        parts = leaves(message)
        chosen = _choose(message, parts)
        text = _text(chosen)[:MAX_TEXT] if chosen is not None else ""
        if chosen is not None and chosen.get_content_type() == "text/html":
            text = html.unescape(nh3.clean(text, tags=set()))
        listed = [f"[attachment: {filename(p, i)} ({p.get_content_type()}, {_size(p)} bytes)]"
                  for i, p in enumerate(parts) if p is not chosen and not _twin(chosen, p)]  # fmt: skip
    except Exception:  # what the parser cannot read is shown as text, addresses hidden all the same
        text, listed = raw.partition(b"\r\n\r\n")[2].decode("utf-8", "replace"), []
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
              "Content-Transfer-Encoding: 8bit", ""]  # fmt: skip
    body = hide_addresses(text).replace("\r\n", "\n").split("\n") + listed
    return ("\r\n".join(lines + body) + "\r\n").encode("utf-8")

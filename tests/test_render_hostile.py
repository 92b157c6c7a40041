"""Rendering never raises on hostile input: charsets, transfer encodings and MIME shapes, fuzzed.

A post whose footer cannot be appended is wrapped, untouched, as the first part of a new
multipart/mixed; the list's headers are there exactly once and the original bytes survive."""

from __future__ import annotations

from email import message_from_bytes
from email.message import Message
from email.policy import compat32

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from maillist.errors import MessageRefused
from maillist.mail.mailparse import Limits, check_line_endings, prescan
from maillist.mail.render import Author, Copy, edited, finish, mail_charset
from maillist.models import MailingList, Posting

TEAM = MailingList(
    id=1, address="team@example.org", name="Team", description="", posting=Posting.MEMBERS,
    subject_prefix="[Team]", max_message_size=10485760, reply_to="author", personalize=False,
    web_url="", created_at="t",
)  # fmt: skip
AUTHOR = Author("anne@example.org", "Anne", ("Licensee Badge",))
FOOTER = "-- \nAnne - Licensee Badge\nTo unsubscribe, write to team-leave@example.org\n"
HOSTILE_CHARSETS = [
    "undefined", "idna", "ab\x00c", "rot13", "base64", "utf-16", "utf-32", "unicode_escape",
    "raw_unicode_escape", "punycode", "uu", "hex", "mbcs", "x\xff", "utf-7", "", " ", '"',
    "iso-8859-1", "utf-8", "us-ascii", "cp1252", "iso-2022-jp", "shift_jis", "koi8-r", "utf-8-sig",
]  # fmt: skip
ENCODINGS = ["7bit", "8bit", "quoted-printable", "base64", "binary", "x-uuencode", "junk", ""]


def copy_of(raw: bytes) -> bytes:
    return finish(edited(raw, TEAM), Copy(TEAM, AUTHOR, footer=FOOTER))


def accepted(raw: bytes) -> bool:
    try:
        check_line_endings(raw)
        prescan(raw, Limits())
    except MessageRefused:
        return False
    return True


def body_of(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize("charset", HOSTILE_CHARSETS)
@pytest.mark.parametrize("cte", ["7bit", "8bit", ""])
def test_a_hostile_charset_never_raises_and_keeps_the_body(charset: str, cte: str) -> None:
    body = "caf\xe9 \u2603 plain text\r\n".encode("utf-8")
    head = (
        f'From: anne@example.org\r\nSubject: x\r\nContent-Type: text/plain; charset="{charset}"\r\n'
    )
    if cte:
        head += f"Content-Transfer-Encoding: {cte}\r\n"
    raw = head.encode("utf-8", "surrogateescape") + b"\r\n" + body
    out = copy_of(raw)
    assert out.count(b"\r\nList-Id: ") == 1
    assert b"Anne - Licensee Badge" in out
    assert body in out  # appended after it, or the original wrapped untouched


def test_the_charsets_that_once_stopped_delivery_are_wrapped() -> None:
    for charset in ("undefined", "idna", "ab\x00c"):
        raw = (
            f"From: a@example.org\r\nContent-Type: text/plain; charset={charset}\r\n\r\ncaf\xe9\r\n"
        ).encode("latin-1")
        out = copy_of(raw)
        parsed = message_from_bytes(out, policy=compat32)
        assert parsed.get_content_type() == "multipart/mixed", charset
        payload = parsed.get_payload()
        assert isinstance(payload, list)
        first, footer = payload
        assert isinstance(first, Message) and isinstance(footer, Message)
        assert first.get_payload(decode=True) == b"caf\xe9\r\n"
        assert b"Licensee Badge" in footer.get_payload(decode=True)


def test_mail_charset_accepts_real_charsets_only() -> None:
    assert mail_charset("UTF-8") == "utf-8"
    assert mail_charset("iso-8859-1") == "iso8859-1"
    assert mail_charset(None) == "ascii"
    for junk in ("undefined", "idna", "ab\x00c", "rot13", "utf-16", "base64", "x\xff", "utf-7"):
        assert mail_charset(junk) is None, junk


# --- fuzzing over MIME shapes ------------------------------------------------------------------

# Bare CR or LF never reach the renderer: ingest refuses them (check_line_endings).
charsets = st.sampled_from(HOSTILE_CHARSETS) | st.text(
    st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12
)
encodings = st.sampled_from(ENCODINGS)
texts = st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"\r\n"))
boundaries = st.sampled_from(["b1", "b2", "", "\xff", "a b", "=_x", "b1--"])


@st.composite
def leaf(draw: st.DrawFn) -> bytes:
    ctype = draw(st.sampled_from(["text/plain", "text/html", "application/octet-stream", "x/y"]))
    head = f'Content-Type: {ctype}; charset="{draw(charsets)}"\r\n'
    if draw(st.booleans()):
        head += f"Content-Transfer-Encoding: {draw(encodings)}\r\n"
    return head.encode("utf-8", "surrogateescape") + b"\r\n" + draw(texts)


@st.composite
def multipart(draw: st.DrawFn, depth: int = 0) -> bytes:
    sub = draw(st.sampled_from(["mixed", "alternative", "signed", "encrypted", "related"]))
    boundary = draw(boundaries)
    parts = draw(st.lists(leaf() if depth >= 2 else (leaf() | multipart(depth + 1)), max_size=3))
    head = f'Content-Type: multipart/{sub}; boundary="{boundary}"\r\n'.encode(
        "utf-8", "surrogateescape"
    )
    b = boundary.encode("utf-8", "surrogateescape")
    body = b"preamble\r\n" + b"".join(b"--" + b + b"\r\n" + p + b"\r\n" for p in parts)
    if draw(st.booleans()):  # a missing closing delimiter is as common as a present one
        body += b"--" + b + b"--\r\n"
    return head + b"\r\n" + body


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    top = draw(leaf() | multipart())
    head = b"From: Anne <anne@example.org>\r\nSubject: " + draw(texts).replace(b"\r\n", b" ")
    head += b"\r\n"
    if draw(st.booleans()):
        head += b"MIME-Version: 1.0\r\n"
    return head + top


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_render_never_raises_and_keeps_the_original(raw: bytes) -> None:
    assume(accepted(raw))  # the renderer only ever sees what ingest accepted
    out = copy_of(raw)
    parsed = message_from_bytes(out, policy=compat32)
    assert len(parsed.get_all("List-Id") or []) == 1
    body = body_of(raw)
    ctype = parsed.get_content_type()
    if b"multipart/encrypted" in raw.split(b"\r\n\r\n", 1)[0].lower():
        return  # encrypted bodies are left alone
    assert b"Licensee Badge" in out
    if body in out:
        return  # appended after it, or the original wrapped untouched
    if ctype == "multipart/mixed":  # the footer is a new last part, before the closing delimiter
        closing = b"\r\n--" + str(parsed.get_boundary()).encode("utf-8", "surrogateescape") + b"--"
        at = body.rfind(closing)
        assert at >= 0 and body[:at] in out and body[at:] in out, out[:400]
        return
    # only a text/plain re-encoded to UTF-8 may change its bytes
    assert ctype == "text/plain" and parsed.get_content_charset() == "utf-8", out[:400]

"""The list copy, edited from the original bytes: headers, prefix, Reply-To, badges and footers."""

from __future__ import annotations

import dataclasses
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maillist.mail.render import Author, Copy, Parts, edited, finish, prefixed
from maillist.models import MailingList, Posting


def render(raw: bytes, copy: Copy) -> bytes:
    """What the server does for one copy: the per-post edits, then the per-copy fields."""
    return finish(edited(raw, copy.mlist, copy.message_id), copy)


TEAM = MailingList(
    id=1, address="team@example.org", name="Team", description="", posting=Posting.MEMBERS,
    subject_prefix="[Team]", max_message_size=10485760, reply_to="author", personalize=False,
    web_url="", created_at="t",
)  # fmt: skip
ANNE = Author("madamos@example.org", "madamos", ("Licensee Badge",))
FOOTER = "-- \nmadamos - Licensee Badge\nTo unsubscribe, write to team-leave@example.org\n"


def field_list(raw: bytes) -> list[tuple[str, str]]:
    return [
        (f.split(b":", 1)[0].decode(), f.split(b":", 1)[1].strip().decode())
        for f in Parts.split(raw).fields
    ]


def test_full_header_set_of_a_copy() -> None:
    raw = (
        b"Received: from x by y; Tue, 24 Nov 2026 10:00:00 +0000\r\n"
        b"From: madamos <madamos@example.org>\r\nTo: team@example.org\r\nCc: kai@example.com\r\n"
        b"Subject: Rotations\r\nMessage-ID: <q1@example.org>\r\nIn-Reply-To: <p@example.org>\r\n"
        b"References: <o@example.org>\r\n <p@example.org>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
        b"List-Id: Forged <evil.example.org>\r\nX-Maillist-Badges: CEO Badge\r\nX-Loop: nope\r\n"
        b"Precedence: bulk\r\nList-Unsubscribe: <mailto:evil@example.org>\r\n"
        b"\r\nShould I ask for broader roles?\r\n"
    )
    copy = render(raw, Copy(TEAM, ANNE))
    assert field_list(copy) == [
        ("Received", "from x by y; Tue, 24 Nov 2026 10:00:00 +0000"),
        ("From", "madamos <madamos@example.org>"),
        ("To", "team@example.org"),
        ("Cc", "kai@example.com"),
        ("Subject", "[Team] Rotations"),
        ("Message-ID", "<q1@example.org>"),
        ("In-Reply-To", "<p@example.org>"),
        ("References", "<o@example.org>\r\n <p@example.org>"),
        ("Date", "Tue, 24 Nov 2026 10:00:00 +0000"),
        ("List-Id", "Team <team.example.org>"),
        ("List-Post", "<mailto:team@example.org>"),
        ("List-Help", "<mailto:team-request@example.org?subject=help>"),
        ("List-Subscribe", "<mailto:team-join@example.org>"),
        ("List-Unsubscribe", "<mailto:team-leave@example.org>"),
        ("Precedence", "list"),
        ("X-Loop", "team@example.org"),
        ("X-Maillist-Author", "madamos@example.org"),
        ("X-Maillist-Badges", "Licensee Badge"),
    ]
    assert copy.endswith(b"\r\n\r\nShould I ask for broader roles?\r\n")  # body untouched


def test_web_url_adds_one_click_for_personal_copies() -> None:
    lst = dataclasses.replace(TEAM, web_url="https://lists.example.org")
    raw = b"From: a@example.org\r\nSubject: s\r\n\r\nb\r\n"
    copy = render(
        raw,
        Copy(lst, ANNE, unsubscribe_mailto="team-leave+tok@example.org",
             unsubscribe_url="https://lists.example.org/unsubscribe/team@example.org/tok"),
    )  # fmt: skip
    fields = dict(field_list(copy))
    assert fields["List-Unsubscribe"] == (
        "<mailto:team-leave+tok@example.org>, <https://lists.example.org/unsubscribe/team@example.org/tok>"
    )
    assert fields["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert fields["List-Archive"] == "<https://lists.example.org/lists/team@example.org/>"
    assert "Archived-At" not in fields  # this copy carries no Message-ID the list minted


def test_archived_at_points_at_the_posts_permalink() -> None:
    lst = dataclasses.replace(TEAM, web_url="https://lists.example.org")
    raw = b"From: a@example.org\r\nSubject: s\r\nMessage-ID: <a/b c@x>\r\n\r\nb\r\n"
    fields = dict(field_list(render(raw, Copy(lst, ANNE, message_id="a/b c@x"))))
    assert fields["Archived-At"] == (
        "<https://lists.example.org/lists/team@example.org/msg/a%2Fb%20c@x>"
    )
    off = dataclasses.replace(lst, archive="none")
    fields = dict(field_list(render(raw, Copy(off, ANNE, message_id="a/b c@x"))))
    assert "Archived-At" not in fields and "List-Archive" not in fields


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("hi", "[Team] hi"),
        ("[Team] hi", "[Team] hi"),
        ("Re: [Team] hi", "Re: [Team] hi"),
        ("Re: [Team] Re: [Team] hi", "Re: [Team] hi"),
        ("RE: re: [team] hi", "Re: [Team] hi"),
        ("[Team] Re: hi", "Re: [Team] hi"),
        ("Fwd: hi", "[Team] Fwd: hi"),
        ("", "[Team]"),
    ],
)
def test_prefix_added_once(subject: str, expected: str) -> None:
    assert prefixed(subject, "[Team]") == expected


def test_encoded_subject_is_prefixed_once_and_re_encoded() -> None:
    raw = (
        b"From: a@example.org\r\nSubject: =?utf-8?q?Re=3A_=5BTeam=5D_Caf=C3=A9_talk?=\r\n\r\nb\r\n"
    )
    copy = render(raw, Copy(TEAM, ANNE))
    parsed = message_from_bytes(copy, policy=default)
    assert parsed["Subject"] == "Re: [Team] Café talk"
    assert b"Caf\xc3\xa9" not in copy.split(b"\r\n\r\n")[0]  # no raw 8-bit in the header


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("author", "Anne <anne@example.org>"),
        ("list", "team@example.org"),
        ("help@example.org", "help@example.org"),
    ],
)
def test_reply_to_policy(policy: str, expected: str) -> None:
    raw = b"From: a@example.org\r\nReply-To: Anne <anne@example.org>\r\nSubject: s\r\n\r\nb\r\n"
    copy = render(raw, Copy(dataclasses.replace(TEAM, reply_to=policy), ANNE))
    assert dict(field_list(copy))["Reply-To"] == expected


def test_minted_message_id_is_added_only_when_missing() -> None:
    without = render(b"From: a@example.org\r\n\r\nb\r\n", Copy(TEAM, ANNE, message_id="m@x"))
    assert dict(field_list(without))["Message-ID"] == "<m@x>"
    with_id = render(b"Message-ID: <orig@x>\r\n\r\nb\r\n", Copy(TEAM, ANNE, message_id="m@x"))
    assert [v for k, v in field_list(with_id) if k == "Message-ID"] == ["<orig@x>"]


def test_badges_with_injection_attempts_cannot_add_headers() -> None:
    sneaky = Author("a@example.org", "a", ("Nice\r\nBcc: victim@example.org",))
    copy = render(b"From: a@example.org\r\n\r\nb\r\n", Copy(TEAM, sneaky))
    names = [k.lower() for k, _ in field_list(copy)]
    assert "bcc" not in names


def body_of(copy: bytes) -> EmailMessage:
    msg = message_from_bytes(copy, policy=default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_footer_plain_text_same_charset() -> None:
    raw = b"From: a@example.org\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello\r\n"
    copy = render(raw, Copy(TEAM, ANNE, footer=FOOTER))
    assert copy.endswith(
        b"Hello\r\n\r\n-- \r\nmadamos - Licensee Badge\r\nTo unsubscribe, write to team-leave@example.org\r\n"
    )


def test_footer_non_utf8_body_is_reencoded_when_needed() -> None:
    raw = b"From: a@example.org\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nCaf\xe9\r\n"
    latin = render(raw, Copy(TEAM, ANNE, footer="-- \nJos\xe9\n"))
    assert b"Caf\xe9\r\n\r\n-- \r\nJos\xe9\r\n" in latin  # fits latin-1: appended as latin-1
    greek = render(raw, Copy(TEAM, ANNE, footer="-- \n\u0391\u03b8\u03b7\u03bd\u03ac\n"))
    msg = body_of(greek)
    assert msg.get_content_charset() == "utf-8"
    assert (
        msg.get_content().replace("\r\n", "\n") == "Café\n\n-- \n\u0391\u03b8\u03b7\u03bd\u03ac\n"
    )


def test_footer_on_multipart_mixed_is_a_new_last_part() -> None:
    raw = (
        b'From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--b1\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n--b1--\r\n"
    )
    copy = render(raw, Copy(TEAM, ANNE, footer=FOOTER))
    parts = list(body_of(copy).iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "application/pdf", "text/plain"]
    assert "Licensee Badge" in parts[-1].get_content()
    assert copy.split(b"\r\n\r\n", 1)[1].startswith(
        raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n--b1--")[0]
    )


def test_footer_wraps_alternative_and_keeps_it_intact() -> None:
    inner = b"--alt\r\nContent-Type: text/plain\r\n\r\nplain\r\n--alt\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--alt--\r\n"
    raw = (
        b'From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="alt"\r\n\r\n'
        + inner
    )
    copy = render(raw, Copy(TEAM, ANNE, footer=FOOTER))
    msg = body_of(copy)
    assert msg.get_content_type() == "multipart/mixed"
    first, footer = list(msg.iter_parts())
    assert first.get_content_type() == "multipart/alternative"
    assert inner in copy
    assert "Licensee Badge" in footer.get_content()


def test_signed_body_is_never_altered_inside_the_signature() -> None:
    signed_part = b"Content-Type: text/plain\r\n\r\nI mean it.\r\n"
    raw = (
        b'From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol="application/pgp-signature"; '
        b'micalg=pgp-sha256; boundary="sig"\r\n\r\n--sig\r\n' + signed_part + b"--sig\r\n"
        b"Content-Type: application/pgp-signature\r\n\r\n-----BEGIN PGP SIGNATURE-----\r\nxyz\r\n-----END PGP SIGNATURE-----\r\n--sig--\r\n"
    )
    copy = render(raw, Copy(TEAM, ANNE, footer=FOOTER))
    original_body = raw.split(b"\r\n\r\n", 1)[1]
    assert original_body in copy  # the whole signed structure, byte for byte
    msg = body_of(copy)
    assert msg.get_content_type() == "multipart/mixed"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["multipart/signed", "text/plain"]


def test_encrypted_body_gets_no_footer() -> None:
    raw = (
        b'From: a@example.org\r\nContent-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="e"\r\n\r\n'
        b"--e\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--e--\r\n"
    )
    copy = render(raw, Copy(TEAM, ANNE, footer=FOOTER))
    assert copy.split(b"\r\n\r\n", 1)[1] == raw.split(b"\r\n\r\n", 1)[1]


def test_quoted_printable_text_is_wrapped_not_decoded() -> None:
    raw = b"From: a@example.org\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=C3=A9\r\n"
    copy = render(raw, Copy(TEAM, ANNE, footer=FOOTER))
    msg = body_of(copy)
    first, footer = list(msg.iter_parts())
    assert first.get_content().replace("\r\n", "\n") == "Café\n"
    assert "Licensee Badge" in footer.get_content()


@given(st.binary(max_size=300))
def test_render_never_crashes_and_keeps_the_body(body: bytes) -> None:
    body = body.replace(b"\r", b"").replace(b"\n", b"\r\n")
    raw = b"From: a@example.org\r\nSubject: x\r\n\r\n" + body
    copy = render(raw, Copy(TEAM, ANNE))
    assert copy.endswith(b"\r\n\r\n" + body)

"""Internationalised mail (RFC 6530-6533), as far as it is built: a member with a UTF-8 address
posts with SMTPUTF8 and an RFC 6532 header, and the post is accepted as his, with its id and
subject as he wrote them; an A-label and a U-label domain are one member; copies go out with
SMTPUTF8 through a relay that offers it, and through one that does not the ASCII members get a
downgraded copy while the others wait with the reason shown in `maillist queue`."""

from __future__ import annotations

import json
import mailbox
import re
import smtplib
import urllib.request
from email.header import decode_header, make_header
from pathlib import Path

import pytest

from maillist.delivery.relay import NO_SMTPUTF8
from maillist.mail.downgrade import ascii_id, downgrade
from serverutil import running, wait_for
from sink import RunningSink, Sink
from test_smtp_receive import admin

LIST = "intl@l.example.org"
JURGEN = "jürgen@bücher.example"


def test_a_utf8_member_posts_with_smtputf8_and_is_recognised(tmp_path: Path) -> None:
    db = tmp_path / "i.db"
    assert admin(db, "lists", "create", LIST).returncode == 0
    added = admin(db, "members", "add", LIST, JURGEN, "--name", "Jürgen")
    assert added.returncode == 0, added.stderr
    again = admin(db, "members", "add", LIST, "jürgen@xn--bcher-kva.example")
    assert again.returncode != 0 and "already" in again.stderr  # the same person
    raw = (
        f"From: Jürgen <{JURGEN}>\r\nTo: {LIST}\r\nSubject: Grüße aus Köln\r\n"
        "Message-ID: <i18n1@bücher.example>\r\n\r\nHallo zusammen.\r\n"
    ).encode()
    with running(db) as srv:
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as client:
            client.ehlo()
            assert client.has_extn("smtputf8")
            client.sendmail(JURGEN, [LIST], raw, mail_options=["SMTPUTF8"])
        [(mid, sender, subject, verdict)] = srv.rows(
            "SELECT message_id, sender, subject, verdict FROM messages"
        )
    assert (mid, sender, subject, verdict) == (
        "i18n1@bücher.example",
        JURGEN,
        "Grüße aus Köln",
        "accept",
    )
    shown = admin(db, "messages", "show", "i18n1@bücher.example")
    assert shown.returncode == 0 and "Grüße aus Köln" in shown.stdout
    members = json.loads(admin(db, "members", "list", LIST, "--json").stdout)
    assert [m["address"] for m in members] == [JURGEN]


def test_downgrade_rewrites_utf8_fields_in_ascii_and_leaves_the_body() -> None:
    raw = (
        f"From: Jürgen <{JURGEN}>\r\nTo: Bob <bob@bücher.example>\r\nSubject: Grüße\r\n"
        "Message-ID: <i1@bücher.example>\r\nReferences: <a@x> <i0@bücher.example>\r\n"
        "List-Id: intl <intl.l.example.org>\r\n\r\nKöln\r\n"
    ).encode()
    out = downgrade(raw)
    head, body = out.split(b"\r\n\r\n", 1)
    assert head.isascii() and body == "Köln\r\n".encode()
    fields = dict(line.split(": ", 1) for line in head.decode().replace("\r\n ", " ").split("\r\n"))
    assert fields["From"].endswith(" :;") and fields["From"].startswith("=?utf-8?")
    assert fields["To"] == "Bob <bob@xn--bcher-kva.example>"
    assert str(make_header(decode_header(fields["Subject"]))) == "Grüße"
    assert fields["Message-ID"] == f"<{ascii_id('i1@bücher.example')}>"
    assert fields["References"] == f"<a@x> <{ascii_id('i0@bücher.example')}>"
    assert fields["List-Id"] == "intl <intl.l.example.org>"
    plain = b"From: a@example.org\r\nSubject: s\r\n\r\nb\r\n"
    assert downgrade(plain) == plain


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "aiosmtplib"])
@pytest.mark.parametrize("smtputf8", [True, False], ids=["relay-with-smtputf8", "without"])
def test_copies_go_out_with_smtputf8_or_downgraded(
    tmp_path: Path, smtputf8: bool, pipelining: bool
) -> None:
    db = tmp_path / "d.db"
    for args in (
        ("lists", "create", LIST, "--name", "Intl"),
        ("members", "add", LIST, JURGEN, "--name", "Jürgen"),
        ("members", "add", LIST, "bob@example.net"),
    ):
        assert admin(db, *args).returncode == 0
    raw = (
        f"From: Jürgen <{JURGEN}>\r\nTo: {LIST}\r\nSubject: Grüße\r\n"
        "Message-ID: <i18n2@bücher.example>\r\n\r\nHallo.\r\n"
    ).encode()
    with (
        RunningSink(Sink(pipelining=pipelining), smtputf8=smtputf8) as sink,
        running(db, "--relay", f"127.0.0.1:{sink.port}") as srv,
    ):
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as client:
            client.sendmail(JURGEN, [LIST], raw, mail_options=["SMTPUTF8"])
        sink.wait(lambda s: "bob@example.net" in s.rcpts())
        if smtputf8:
            sink.wait(lambda s: JURGEN in s.rcpts())
        else:
            wait_for(lambda: NO_SMTPUTF8[:40] in admin(db, "queue", "--json").stdout,
                     "the reason in maillist queue")  # fmt: skip
    bob = next(r for r in sink.received if "bob@example.net" in r.rcpts)
    if smtputf8:
        assert "SMTPUTF8" in bob.mail_options
        assert f"From: Jürgen <{JURGEN}>".encode() in bob.data  # the author's field as written
        assert any(JURGEN in r.rcpts for r in sink.received)
    else:
        head = bob.data.split(b"\r\n\r\n", 1)[0]
        assert head.isascii() and "SMTPUTF8" not in bob.mail_options
        assert bob.data.endswith(b"Hallo.\r\n") or b"Hallo." in bob.data
        assert JURGEN not in sink.rcpts()


def test_look_alike_addresses_are_refused_unless_allowed(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    assert admin(db, "lists", "create", LIST).returncode == 0
    assert admin(db, "members", "add", LIST, "anne@example.org", JURGEN).returncode == 0
    cyrillic = "\u0430nne@example.org"  # the first letter is CYRILLIC SMALL LETTER A
    refused = admin(db, "members", "add", LIST, cyrillic)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert "looks like the existing address anne@example.org" in refused.stderr
    mixed = admin(db, "members", "add", LIST, "p\u0430ypal@example.org")
    assert mixed.returncode == 1 and "mixes scripts (local part: CYRILLIC, LATIN)" in mixed.stderr
    umlaut = admin(db, "members", "add", LIST, "jurgen@bucher.example")  # plain ASCII: allowed
    assert umlaut.returncode == 0, umlaut.stderr
    allowed = admin(db, "members", "add", LIST, cyrillic, "--allow-confusable")
    assert allowed.returncode == 0, allowed.stderr
    badge = admin(db, "badges", "grant", cyrillic, "Licensee Badge")
    assert badge.returncode == 1 and "anne@example.org" in badge.stderr
    assert admin(db, "badges", "grant", "anne@example.org", "Licensee Badge").returncode == 0
    forced = admin(db, "badges", "grant", cyrillic, "Licensee Badge", "--allow-confusable")
    assert forced.returncode == 0, forced.stderr


def utf8_mail(port: int, sender: str, to: str, subject: str, mid: str, body: str = "") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(sender, [to], (
            f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n\r\n"
            f"{body or subject}\r\n"
        ).encode(), mail_options=["SMTPUTF8"])  # fmt: skip


def by_email(port: int, box: mailbox.Maildir, sender: str, action: str, mid: str) -> bytes:
    """Ask to join or leave by email and answer the confirmation, as a member would; returns
    the confirmation as it arrived."""

    wanted = {"join": b"subject: confirm your subscription", "leave": b"subject: confirm leaving"}

    def confirmations() -> list[bytes]:
        found = [box.get_bytes(k) for k in box.iterkeys()]
        return [m for m in found if wanted[action] in m.lower()]

    before = len(confirmations())
    utf8_mail(port, sender, f"intl-{action}@l.example.org", action, f"{mid}.ask")
    wait_for(lambda: len(confirmations()) > before, f"the {action} confirmation")
    confirm = confirmations()[-1]
    [token] = re.findall(r"intl-confirm\+([\w-]+)@l\.example\.org", confirm.decode())
    utf8_mail(port, sender, f"intl-confirm+{token}@l.example.org", "Re: confirm", f"{mid}.yes")
    return confirm


def test_join_bounces_and_the_archive_work_for_a_utf8_address(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    assert admin(db, "lists", "create", LIST, "--name", "Intl").returncode == 0
    assert admin(db, "lists", "set", LIST, "archive", "public").returncode == 0
    outbox = tmp_path / "outbox"
    with running(db, "--outbox", str(outbox), "--http-port", "0") as srv:
        box = mailbox.Maildir(str(outbox))
        confirm = by_email(srv.port, box, JURGEN, "join", "j1@bücher.example")
        assert f"Delivered-To: {JURGEN}\n".encode() in confirm
        assert f"To: {JURGEN}\n".encode() in confirm  # UTF-8, never encoded words
        wait_for(lambda: JURGEN in admin(db, "members", "list", LIST).stdout, "the join")
        utf8_mail(srv.port, JURGEN, LIST, "Grüße", "j3@bücher.example", "Hallo.")
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as client:
            client.sendmail("", ["intl-bounces+jürgen=bücher.example@l.example.org"], (
                "From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\n"
                'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
                "--b\r\nContent-Type: text/plain\r\n\r\nGone.\r\n--b\r\n"
                "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
                f"Final-Recipient: utf-8; {JURGEN}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n"
            ).encode(), mail_options=["SMTPUTF8"])  # fmt: skip
        listed = json.loads(admin(db, "members", "list", LIST, "--json").stdout)
        assert [(m["address"], m["bounce_score"]) for m in listed] == [(JURGEN, 1.0)]
        page = (
            urllib.request.urlopen(
                f"http://127.0.0.1:{srv.http_port}/lists/{LIST}/msg/j3@b%C3%BCcher.example",
                timeout=10,
            )
            .read()
            .decode()
        )
        assert "Grüße" in page and "Hallo." in page and "jürgen" in page
        by_email(srv.port, box, JURGEN, "leave", "j4@bücher.example")  # and he leaves
        wait_for(lambda: JURGEN not in admin(db, "members", "list", LIST).stdout, "the leave")


def test_a_look_alike_joining_by_email_waits_for_a_moderator(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    assert admin(db, "lists", "create", LIST).returncode == 0
    assert admin(db, "members", "add", LIST, "anne@example.org").returncode == 0
    twin = "\u0430nne@example.org"  # CYRILLIC SMALL LETTER A, then "nne"
    with running(db, "--outbox", str(tmp_path / "outbox")) as srv:
        box = mailbox.Maildir(str(tmp_path / "outbox"))
        by_email(srv.port, box, twin, "join", "t1@example.org")
        query = "SELECT reasons FROM messages WHERE message_id = 't1@example.org.yes'"
        wait_for(lambda: bool(srv.rows(query)), "the confirmation reply")
        [(reasons,)] = srv.rows(query)
    assert "awaits a moderator" in str(reasons)
    assert "looks like the existing address anne@example.org" in str(reasons)
    members = json.loads(admin(db, "members", "list", LIST, "--json").stdout)
    assert [m["address"] for m in members] == ["anne@example.org"]
    assert twin in admin(db, "requests", "list", LIST).stdout

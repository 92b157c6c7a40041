"""Internationalised mail (RFC 6530-6533), as far as it is built: a member with a UTF-8 address
posts with SMTPUTF8 and an RFC 6532 header, and the post is accepted as his, with its id and
subject as he wrote them; an A-label and a U-label domain are one member."""

from __future__ import annotations

import json
import smtplib
from pathlib import Path

from serverutil import running
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

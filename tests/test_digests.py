"""Digests over real sockets: members in digest mode get the posts gathered into one MIME
digest (contents grouped by thread, names with badges, each post as message/rfc822), through
the durable queue, numbered, never twice; regular members get each post as before."""

from __future__ import annotations

import email
import email.policy
import smtplib
from email.message import EmailMessage
from pathlib import Path

from serverutil import Server
from sink import RunningSink, Sink
from test_smtp_receive import admin

LIST = "team@example.org"


def post(port: int, sender: str, mid: str, subject: str, extra: str = "") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail(sender, [LIST], (
            f"From: {sender}\r\nTo: {LIST}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n"
            f"{extra}\r\nText of {mid}.\r\n"
        ).encode())  # fmt: skip


def test_digest_readers_get_one_numbered_digest_and_never_twice(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    for args in (
        ("lists", "create", LIST, "--name", "Team", "--posting", "open"),
        ("lists", "set", LIST, "badges", "unless-forged"),  # the posts here are not signed
        ("members", "add", LIST, "anne@example.org", "--name", "Anne Author"),
        ("members", "add", LIST, "dora@example.net", "--mode", "digest"),
        ("badges", "grant", "anne@example.org", "Licensee Badge"),
    ):
        assert admin(db, *args).returncode == 0
    with RunningSink(Sink()) as sink:
        srv = Server(db, "--relay", f"127.0.0.1:{sink.port}")
        try:
            post(srv.port, "anne@example.org", "d1@example.org", "Budgets")
            post(srv.port, "zed@example.net", "d2@example.net", "Re: Budgets",
                 "In-Reply-To: <d1@example.org>\r\n")  # fmt: skip
            post(srv.port, "anne@example.org", "d3@example.org", "Hiring")
            sink.wait(lambda s: len(s.rcpts()) >= 3)  # anne gets each post; dora does not
            assert "dora@example.net" not in sink.rcpts()
            sent = admin(db, "digests", "send", LIST)
            assert "Team Digest, Vol 1, Issue 1: 3 post(s) to 1 reader(s)" in sent.stdout
            sink.wait(lambda s: "dora@example.net" in s.rcpts())
            again = admin(db, "digests", "send")
            assert "no posts are waiting" in again.stdout  # taken with the digest: never twice
            post(srv.port, "anne@example.org", "d4@example.org", "Later")
            sink.wait(lambda s: len(s.rcpts()) >= 5)
            second = admin(db, "digests", "send")
            assert "Vol 1, Issue 2: 1 post(s)" in second.stdout
            sink.wait(lambda s: s.rcpts().count("dora@example.net") == 2)
        finally:
            srv.stop()
    data = next(r.data for r in sink.received if r.rcpts == ["dora@example.net"])
    digest = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(digest, EmailMessage)
    assert digest["Subject"] == "Team Digest, Vol 1, Issue 1"
    assert digest["List-Id"] == "Team <team.example.org>"
    contents, bundle, footer = digest.iter_parts()
    text = contents.get_content()
    assert text.index("Budgets") < text.index("Hiring")
    assert "Anne Author (Licensee Badge)" in text and "zed," in text
    assert bundle.get_content_type() == "multipart/digest"
    posts = list(bundle.iter_parts())
    assert [p.get_content_type() for p in posts] == ["message/rfc822"] * 3
    ids = []
    for part in posts:
        payload = part.get_payload()
        assert isinstance(payload, list) and isinstance(payload[0], EmailMessage)
        ids.append(str(payload[0]["Message-ID"]))
    assert ids == ["<d1@example.org>", "<d2@example.net>", "<d3@example.org>"]
    assert "set regular" in footer.get_content()

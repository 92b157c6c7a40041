"""Members and moderators act by email, end to end: the server on a real socket, notices and
copies relayed to a real SMTP sink, replies built the way mail clients build them."""

from __future__ import annotations

import json
import re
import shutil
import smtplib
import subprocess
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

import dbutil
from serverutil import Server
from sink import RunningSink, Sink, free_port
from test_smtp_receive import admin

LIST = "team@example.org"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Server, Sink, Path]]:
    db = tmp_path / "m.db"
    for args in (
        ("lists", "create", LIST, "--name", "Team"),
        ("members", "add", LIST, "anne@example.org", "--name", "Anne"),
        ("members", "add", LIST, "mo@example.org", "--role", "moderator"),
        ("members", "add", LIST, "owen@example.org", "--role", "owner"),
    ):
        assert admin(db, *args).returncode == 0
    with RunningSink(Sink()) as sink:
        srv = Server(db, "--relay", f"127.0.0.1:{sink.port}")
        try:
            yield srv, sink, db
        finally:
            srv.stop()


def send(srv: Server, raw: bytes, rcpt: str, sender: str) -> None:
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as client:
        client.sendmail(sender, [rcpt], raw)


def mail(
    sender: str, to: str, subject: str = "", body: str = "", mid: str = "", **headers: str
) -> bytes:
    msg = EmailMessage(policy=default)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{mid or abs(hash((sender, to, subject, body)))}@client.example>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body or "\n")
    return msg.as_bytes().replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")


def parse(data: bytes) -> EmailMessage:
    return message_from_bytes(data, policy=default)


def plain(msg: EmailMessage) -> str:
    body = msg.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def to(sink: Sink, address: str) -> list[EmailMessage]:
    with sink.cond:
        return [parse(m.data) for m in sink.received if address in m.rcpts]


def wait_for(sink: Sink, address: str, count: int = 1) -> list[EmailMessage]:
    sink.wait(lambda s: len(to(s, address)) >= count)
    return to(sink, address)


def reply(notice: EmailMessage, sender: str, first_line: str = "", html: bool = False) -> bytes:
    """A reply as Thunderbird builds one: Re: subject, In-Reply-To/References, the answer on top,
    an attribution line, the notice quoted, a signature."""
    quoted = "\n".join("> " + line for line in plain(notice).splitlines())
    text = f"{first_line}\n\nOn 01/12/2026 10:00, {notice['From']} wrote:\n{quoted}\n\n-- \nSent from my client\n"
    msg = EmailMessage(policy=default)
    msg["From"] = sender
    msg["To"] = str(notice["Reply-To"])
    msg["Subject"] = "Re: " + str(notice["Subject"])
    msg["In-Reply-To"] = str(notice["Message-ID"])
    msg["References"] = str(notice["Message-ID"])
    msg["Message-ID"] = f"<reply-{abs(hash(text))}@client.example>"
    if html:
        msg.set_content(
            f"<html><body><p>{first_line}</p><blockquote>{quoted}</blockquote></body></html>",
            subtype="html",
        )
    else:
        msg.set_content(text)
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def confirm_address(notice: EmailMessage) -> str:
    return re.sub(r".*<|>.*", "", str(notice["Reply-To"]))


def members(db: Path) -> list[str]:
    out = admin(db, "members", "list", LIST, "--json").stdout
    return sorted(re.findall(r'"address": "([^"]+)"', out))


def test_join_by_replying_to_the_confirmation(site: tuple[Server, Sink, Path]) -> None:
    srv, sink, db = site
    send(
        srv,
        mail("zoe@example.net", "team-join@example.org", "please"),
        "team-join@example.org",
        "zoe@example.net",
    )
    [notice] = wait_for(sink, "zoe@example.net")
    assert notice["Auto-Submitted"] == "auto-replied" and "team.example.org" in notice["List-Id"]
    token = confirm_address(notice).split("+")[1].split("@")[0]
    assert token in notice["Subject"] and token in plain(notice)
    assert "zoe@example.net" not in members(db)
    answer = reply(notice, "zoe@example.net", "yes please")
    send(srv, answer, confirm_address(notice), "zoe@example.net")
    welcome = wait_for(sink, "zoe@example.net", 2)[1]
    assert "Welcome" in welcome["Subject"]
    assert "zoe@example.net" in members(db)
    # The token was single use: replaying the reply changes nothing and gets one short notice.
    send(srv, answer.replace(b"<reply-", b"<replay-"), confirm_address(notice), "zoe@example.net")
    third = wait_for(sink, "zoe@example.net", 3)[2]
    assert "did not work" in third["Subject"]
    audit = admin(db, "audit").stdout
    assert "members.join" in audit


def test_leave_by_confirmation_and_subscribe_command(site: tuple[Server, Sink, Path]) -> None:
    srv, sink, db = site
    send(
        srv,
        mail("anne@example.org", "team-leave@example.org"),
        "team-leave@example.org",
        "anne@example.org",
    )
    [notice] = wait_for(sink, "anne@example.org")
    assert "leaving" in notice["Subject"]
    send(
        srv,
        reply(notice, "anne@example.org", "ok", html=True),
        confirm_address(notice),
        "anne@example.org",
    )
    goodbye = wait_for(sink, "anne@example.org", 2)[1]
    assert "left" in goodbye["Subject"]
    assert "anne@example.org" not in members(db)
    assert "members.leave" in admin(db, "audit").stdout
    # Commands to -request: subscribe asks for a confirmation again.
    send(
        srv,
        mail("anne@example.org", "team-request@example.org", "subscribe", "set nomail\n-- \nAnne"),
        "team-request@example.org",
        "anne@example.org",
    )
    got = wait_for(sink, "anne@example.org", 4)
    subjects = [m["Subject"] for m in got[2:]]
    assert any("Confirm your subscription" in s for s in subjects), subjects
    results = next(m for m in got[2:] if "results" in m["Subject"])
    text = plain(results)
    assert "> subscribe" in text and "> set nomail" in text and "is not a member" in text


def test_a_forged_or_expired_token_does_nothing(site: tuple[Server, Sink, Path]) -> None:
    srv, sink, db = site
    forged = "team-confirm+" + "0" * 32 + "@example.org"
    send(srv, mail("mallory@evil.example", forged, "yes"), forged, "mallory@evil.example")
    [notice] = wait_for(sink, "mallory@evil.example")
    assert "did not work" in notice["Subject"]
    send(
        srv,
        mail("mallory@evil.example", forged, "again", mid="second"),
        forged,
        "mallory@evil.example",
    )
    assert members(db) == ["anne@example.org", "mo@example.org", "owen@example.org"]
    # Expired: a confirmation past its list's token_days is refused.
    send(
        srv,
        mail("yan@example.net", "team-join@example.org"),
        "team-join@example.org",
        "yan@example.net",
    )
    [notice] = wait_for(sink, "yan@example.net")
    conn = dbutil.connect(db)
    with conn:
        conn.execute("UPDATE requests SET expires_at = '2000-01-01T00:00:00.000000Z'")
    conn.close()
    send(srv, reply(notice, "yan@example.net", "yes"), confirm_address(notice), "yan@example.net")
    wait_for(sink, "yan@example.net", 2)
    assert "yan@example.net" not in members(db)
    # The forger got one notice in all, however often they tried (once a day per address).
    assert len(to(sink, "mallory@evil.example")) == 1


def test_a_subscription_bomb_reaches_its_victim_at_most_twice(
    site: tuple[Server, Sink, Path],
) -> None:
    srv, sink, _db = site
    for n in range(100):
        send(
            srv,
            mail("victim@example.net", "team-join@example.org", f"join {n}", mid=f"bomb{n}"),
            "team-join@example.org",
            "victim@example.net",
        )
    send(
        srv,
        mail("anne@example.org", "team@example.org", "marker", mid="marker"),
        LIST,
        "anne@example.org",
    )
    sink.wait(lambda s: any(b"marker@client.example" in m.data for m in s.received))
    assert 1 <= len(to(sink, "victim@example.net")) <= 2
    [(count,)] = srv.rows("SELECT COUNT(*) FROM requests WHERE address = 'victim@example.net'")
    assert count == 1


@pytest.mark.parametrize(
    ("envelope", "headers"),
    [
        ("", {}),
        ("robot@example.net", {"Auto_Submitted": "auto-replied"}),
        ("robot@example.net", {"Precedence": "bulk"}),
        ("robot@example.net", {"List_Id": "<other.example.net>"}),
    ],
    ids=["null-sender", "auto-submitted", "bulk", "list-id"],
)
def test_automatic_mail_gets_no_answer(
    site: tuple[Server, Sink, Path], envelope: str, headers: dict[str, str]
) -> None:
    srv, sink, _db = site
    raw = mail("robot@example.net", "team-join@example.org", "subscribe", **headers)
    send(srv, raw, "team-join@example.org", envelope)
    send(srv, mail("anne@example.org", LIST, "marker", mid="marker2"), LIST, "anne@example.org")
    sink.wait(lambda s: any(b"marker2@client.example" in m.data for m in s.received))
    assert to(sink, "robot@example.net") == []
    [(verdict, reasons)] = srv.rows("SELECT verdict, reasons FROM messages WHERE kind = 'join'")
    assert verdict == "discard" and "not answered" in str(reasons)


def test_a_copys_leave_address_and_one_click_post_remove_the_member(
    site: tuple[Server, Sink, Path],
) -> None:
    srv, sink, db = site
    srv.stop()  # restarted with the option set (a running server rereads lists every 2 s)
    assert admin(db, "lists", "set", LIST, "personalize", "yes").returncode == 0
    srv = Server(db, "--relay", f"127.0.0.1:{sink.port}")
    try:
        send(srv, mail("anne@example.org", LIST, "hello", mid="p1"), LIST, "anne@example.org")
        [copy] = wait_for(sink, "mo@example.org")
        leave = re.search(r"<mailto:([^>]+)>", str(copy["List-Unsubscribe"]))
        assert leave is not None and "+" in leave.group(1)
        send(
            srv,
            mail("mo@example.org", leave.group(1), "unsubscribe"),
            leave.group(1),
            "mo@example.org",
        )
        goodbye = wait_for(sink, "mo@example.org", 2)[1]
        assert "left" in goodbye["Subject"]
        assert "mo@example.org" not in members(db)
    finally:
        srv.stop()


def test_a_moderator_approves_by_reply_and_a_second_reply_is_refused(
    site: tuple[Server, Sink, Path],
) -> None:
    srv, sink, db = site
    send(
        srv,
        mail("stranger@example.net", LIST, "Offer", "hello all", mid="held1"),
        LIST,
        "stranger@example.net",
    )
    [notice] = wait_for(sink, "mo@example.org")
    assert "held" in notice["Subject"]
    attached = [p for p in notice.iter_attachments() if p.get_content_type() == "message/rfc822"]
    assert attached and b"held1@client.example" in attached[0].as_bytes()
    author = wait_for(sink, "stranger@example.net")
    assert "awaits a moderator" in author[0]["Subject"]
    send(srv, reply(notice, "mo@example.org", "approve"), confirm_address(notice), "mo@example.org")
    copy = wait_for(sink, "anne@example.org")
    assert [m["Message-ID"] for m in copy] == ["<held1@client.example>"]
    again = reply(notice, "mo@example.org", "reject too late").replace(b"<reply-", b"<again-")
    send(srv, again, confirm_address(notice), "mo@example.org")
    sink.wait(lambda s: any("already" in str(m["Subject"]) for m in to(s, "mo@example.org")))
    [late] = [m for m in to(sink, "mo@example.org") if "already" in str(m["Subject"])]
    assert "email:mo@example.org" in plain(late)
    assert "moderation.approve" in admin(db, "audit").stdout


def test_reject_by_reply_mails_the_reason_and_gibberish_gets_help(
    site: tuple[Server, Sink, Path],
) -> None:
    srv, sink, _db = site
    send(
        srv,
        mail("stranger@example.net", LIST, "Spam", "buy", mid="held2"),
        LIST,
        "stranger@example.net",
    )
    [notice] = wait_for(sink, "mo@example.org")
    send(
        srv,
        reply(notice, "mo@example.org", "maybe later"),
        confirm_address(notice),
        "mo@example.org",
    )
    helped = wait_for(sink, "mo@example.org", 2)[1]
    assert "not understood" in helped["Subject"]
    send(
        srv,
        reply(notice, "mo@example.org", "reject off topic here").replace(b"<reply-", b"<r2-"),
        confirm_address(notice),
        "mo@example.org",
    )
    rejected = wait_for(sink, "stranger@example.net", 2)[1]
    assert "not accepted" in rejected["Subject"]
    assert "off topic here" in plain(rejected)


def test_owner_mail_reaches_owners_only_once(site: tuple[Server, Sink, Path]) -> None:
    srv, sink, _db = site
    send(
        srv,
        mail("zoe@example.net", "team-owner@example.org", "question"),
        "team-owner@example.org",
        "zoe@example.net",
    )
    [forwarded] = wait_for(sink, "owen@example.org")
    assert forwarded["X-Loop"] == "team-owner@example.org"
    assert to(sink, "anne@example.org") == []
    # A forwarded copy that comes back (here under a new Message-ID) is not forwarded again.
    back = forwarded.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    back = re.sub(rb"Message-ID: <[^>]+>", b"Message-ID: <back@client.example>", back, flags=re.I)
    send(srv, back, "team-owner@example.org", "owen@example.org")
    [(verdict, reasons)] = srv.rows(
        "SELECT verdict, reasons FROM messages WHERE kind = 'owner' ORDER BY id DESC LIMIT 1"
    )
    assert verdict == "discard" and "loop" in str(reasons)


def test_sigkill_after_a_joins_250_still_sends_one_confirmation(tmp_path: Path) -> None:
    """The confirmation is a queue row written with the 250's commit: killed before it could be
    sent (its relay is not even up), the server sends it after the restart, once."""
    db = tmp_path / "k.db"
    assert admin(db, "lists", "create", LIST).returncode == 0
    with RunningSink(Sink()) as sink:
        srv = Server(db, "--relay", f"127.0.0.1:{free_port()}")
        send(
            srv,
            mail("zoe@example.net", "team-join@example.org"),
            "team-join@example.org",
            "zoe@example.net",
        )
        srv.kill()
        srv = Server(db, "--relay", f"127.0.0.1:{sink.port}")
        try:
            srv_rows = srv.rows
            sink.wait(lambda s: bool(to(s, "zoe@example.net")))
            deadline = time.monotonic() + 30
            while srv_rows("SELECT 1 FROM outbound_batches WHERE state <> 'sent'"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            [(jobs,)] = srv_rows("SELECT COUNT(*) FROM outbound_jobs WHERE notice = 1")
            assert jobs == 1 and len(to(sink, "zoe@example.net")) == 1
        finally:
            srv.stop()


def test_approve_mode_waits_for_a_moderator_and_cli_reject_mails_the_reason(
    site: tuple[Server, Sink, Path],
) -> None:
    srv, sink, db = site
    srv.stop()
    assert admin(db, "lists", "set", LIST, "subscription", "approve").returncode == 0
    srv = Server(db, "--relay", f"127.0.0.1:{sink.port}")
    try:
        send(
            srv,
            mail("zoe@example.net", "team-join@example.org"),
            "team-join@example.org",
            "zoe@example.net",
        )
        [notice] = wait_for(sink, "zoe@example.net")
        send(
            srv, reply(notice, "zoe@example.net", "yes"), confirm_address(notice), "zoe@example.net"
        )
        waiting = wait_for(sink, "zoe@example.net", 2)[1]
        assert "awaits a moderator" in waiting["Subject"]
        assert "zoe@example.net" not in members(db)
        listed = admin(db, "requests", "list", LIST, "--json")
        [pending] = json.loads(listed.stdout)
        assert pending["address"] == "zoe@example.net"
        approved = admin(db, "requests", "approve", str(pending["id"]))
        assert approved.returncode == 0, approved.stderr
        assert "zoe@example.net" in members(db)
        assert "Welcome" in wait_for(sink, "zoe@example.net", 3)[2]["Subject"]
        again = admin(db, "requests", "approve", str(pending["id"]))
        assert again.returncode == 1 and again.stderr.startswith("error: ")
        # The CLI's reject mails the moderator's reason to the author.
        send(
            srv,
            mail("stranger@example.net", LIST, "Ad", "buy", mid="held3"),
            LIST,
            "stranger@example.net",
        )
        wait_for(sink, "stranger@example.net")  # "awaits a moderator"
        held = json.loads(admin(db, "moderation", "list", LIST, "--json").stdout)
        rejected = admin(db, "moderation", "reject", str(held[0]["id"]), "--reason", "not here")
        assert rejected.returncode == 0, rejected.stderr
        notice = wait_for(sink, "stranger@example.net", 2)[1]
        assert "not accepted" in notice["Subject"] and "not here" in plain(notice)
    finally:
        srv.stop()


def test_one_client_cannot_make_the_list_mail_many_addresses(tmp_path: Path) -> None:
    """A client that sends join requests for many different addresses is capped per hour
    (`--notices-per-client`), counted in the database: a restart does not reset it."""
    db = tmp_path / "c.db"
    assert admin(db, "lists", "create", LIST).returncode == 0
    with RunningSink(Sink()) as sink:
        args = ("--relay", f"127.0.0.1:{sink.port}", "--notices-per-client", "3")
        srv = Server(db, *args)
        try:
            for n in range(5):
                victim = f"v{n}@example.net"
                send(
                    srv,
                    mail(victim, "team-join@example.org", mid=f"c{n}"),
                    "team-join@example.org",
                    victim,
                )
        finally:
            srv.stop()
        srv = Server(db, *args)
        try:
            send(
                srv,
                mail("v9@example.net", "team-join@example.org", mid="c9"),
                "team-join@example.org",
                "v9@example.net",
            )
            [(queued,)] = srv.rows("SELECT COUNT(*) FROM outbound_jobs WHERE notice = 1")
            assert queued == 3
            sink.wait(lambda s: len(s.received) >= 3)
        finally:
            srv.stop()
        assert sorted(r for m in sink.received for r in m.rcpts) == [
            "v0@example.net", "v1@example.net", "v2@example.net",
        ]  # fmt: skip


def mode_of(db: Path, address: str) -> str:
    listed = json.loads(admin(db, "members", "list", LIST, "--json").stdout)
    return str(next(m for m in listed if m["address"] == address)["mode"])


def test_a_forged_set_nomail_waits_for_the_member(site: tuple[Server, Sink, Path]) -> None:
    """Anyone can write `From: anne@...`: a command that changes what Anne receives is only
    carried out when Anne answers the confirmation sent to her own mailbox, and she is told."""
    srv, sink, db = site
    forged = mail("anne@example.org", "team-request@example.org", "set nomail", mid="forged")
    send(srv, forged, "team-request@example.org", "mallory@evil.example")
    got = wait_for(sink, "anne@example.org", 2)
    assert mode_of(db, "anne@example.org") == "regular"  # nothing changed on a From's word
    confirmation = next(m for m in got if "Confirm delivery" in str(m["Subject"]))
    assert '"nomail"' in str(confirmation["Subject"])
    results = next(m for m in got if "results" in str(m["Subject"]))
    assert "confirmation was sent" in plain(results)
    # A second forged command within the hour sends nothing more to Anne.
    send(srv, forged.replace(b"<forged@", b"<forged2@"), "team-request@example.org", "m@evil")
    send(
        srv,
        reply(confirmation, "anne@example.org", "yes"),
        confirm_address(confirmation),
        "anne@example.org",
    )
    sink.wait(lambda s: any('now "nomail"' in str(m["Subject"]) for m in to(s, "anne@example.org")))
    assert mode_of(db, "anne@example.org") == "nomail"
    assert "mode=nomail (confirmed)" in admin(db, "audit").stdout


def test_a_flood_of_held_posts_is_no_flood_of_mail_to_the_moderators(tmp_path: Path) -> None:
    db = tmp_path / "flood.db"
    for args in (
        ("lists", "create", LIST, "--name", "Team"),
        ("members", "add", LIST, "mo@example.org", "--role", "moderator"),
    ):
        assert admin(db, *args).returncode == 0
    srv = Server(db)
    try:
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as client:
            for n in range(33):  # a stranger's posts: each held for a moderator
                client.sendmail("x@evil.example", [LIST], mail(
                    "x@evil.example", LIST, f"spam {n}", "buy", mid=f"spam{n}"))  # fmt: skip
        [(held,)] = srv.rows("SELECT COUNT(*) FROM held_messages")
        [(told,)] = srv.rows(
            "SELECT COUNT(*) FROM notices_sent WHERE address = 'mo@example.org' "
            "AND kind = 'held-moderator'"
        )
    finally:
        srv.stop()
    assert held == 33 and told == 30  # every post waits; the moderator hears of thirty an hour


def held_notice(srv: Server, sink: Sink, mid: str) -> EmailMessage:
    send(srv, mail("zed@else.example", LIST, "Hello?", "Hi all", mid=mid), LIST, "zed@else.example")
    [notice] = wait_for(sink, "mo@example.org")
    assert "held" in str(notice["Subject"])
    return notice


@pytest.mark.skipif(not shutil.which("s-nail"), reason="s-nail is not installed (apt s-nail)")
def test_a_moderator_approves_with_s_nail_bottom_posting(
    site: tuple[Server, Sink, Path], tmp_path: Path
) -> None:
    """What Debian's s-nail sends when a moderator types `reply` and `approve`: the
    attribution, the quoted notice, then the answer at the bottom."""
    srv, sink, _db = site
    notice = held_notice(srv, sink, "held-snail")
    box = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True)
    raw = next(m.data for m in sink.received if "mo@example.org" in m.rcpts)
    (box / "new" / "1.notice").write_bytes(raw.replace(b"\r\n", b"\n"))
    subprocess.run(
        ["s-nail", "-#", "-N", "-S", "quote", "-S", "from=mo@example.org",
         "-S", f"mta=smtp://127.0.0.1:{srv.port}", "-f", str(box)],
        input=b"reply 1\napprove\n~.\n", check=True, timeout=60, capture_output=True,
    )  # fmt: skip
    sink.wait(
        lambda s: any("held-snail" in str(m["Message-ID"]) for m in to(s, "anne@example.org"))
    )
    [(verdict,)] = srv.rows(
        "SELECT verdict FROM messages WHERE message_id = 'held-snail@client.example'"
    )
    assert verdict == "approved", notice["Subject"]


def test_a_member_with_a_full_hour_of_notices_still_leaves(
    site: tuple[Server, Sink, Path],
) -> None:
    """Five notices this hour (the anti-bombing cap), then a leave: its confirmation still
    goes, the member leaves; and answers past the cap are announced once, not dropped."""
    srv, sink, db = site
    for n in range(5):
        send(srv, mail("anne@example.org", "team-request@example.org", "info", mid=f"i{n}"),
             "team-request@example.org", "anne@example.org")  # fmt: skip
    wait_for(sink, "anne@example.org", 5)
    send(srv, mail("anne@example.org", "team-request@example.org", "info", mid="i5"),
         "team-request@example.org", "anne@example.org")  # fmt: skip
    send(srv, mail("anne@example.org", "team-leave@example.org", "bye", mid="l1"),
         "team-leave@example.org", "anne@example.org")  # fmt: skip
    got = wait_for(sink, "anne@example.org", 7)
    subjects = [str(m["Subject"]) for m in got]
    assert sum("held back" in s for s in subjects) == 1, subjects
    confirmation = next(m for m in got if "leaving" in str(m["Subject"]))
    send(srv, reply(confirmation, "anne@example.org", "yes"), confirm_address(confirmation),
         "anne@example.org")  # fmt: skip
    sink.wait(lambda s: any("left" in str(m["Subject"]) for m in to(s, "anne@example.org")))
    assert "anne@example.org" not in members(db)


def test_commands_are_answered_once_and_nothing_is_ignored_silently(
    site: tuple[Server, Sink, Path],
) -> None:
    srv, sink, _db = site
    send(srv, mail("anne@example.org", "team-request@example.org", "help", "help\n",
                   mid="h1"), "team-request@example.org", "anne@example.org")  # fmt: skip
    [answer] = wait_for(sink, "anne@example.org")
    assert plain(answer).count("> help") == 1
    send(srv, mail("anne@example.org", "team-request@example.org", "hi", "info\nsubscribez\n",
                   mid="h2"), "team-request@example.org", "anne@example.org")  # fmt: skip
    second = wait_for(sink, "anne@example.org", 2)[1]
    assert "> subscribez" in plain(second) and "Not a command" in plain(second)


def test_who_joins_by_email_is_named_by_their_message(site: tuple[Server, Sink, Path]) -> None:
    srv, sink, db = site
    joining = mail("Zoe Zebra <zoe@example.net>", "team-join@example.org", "join", mid="j1")
    send(srv, joining, "team-join@example.org", "zoe@example.net")
    [notice] = wait_for(sink, "zoe@example.net")
    send(srv, reply(notice, "zoe@example.net", "yes"), confirm_address(notice), "zoe@example.net")
    wait_for(sink, "zoe@example.net", 2)
    listed = json.loads(admin(db, "members", "list", LIST, "--json").stdout)
    assert next(m for m in listed if m["address"] == "zoe@example.net")["name"] == "Zoe Zebra"
    renamed = admin(db, "members", "set", LIST, "zoe@example.net", "name", "Zoë Z.")
    assert renamed.returncode == 0, renamed.stderr
    listed = json.loads(admin(db, "members", "list", LIST, "--json").stdout)
    assert next(m for m in listed if m["address"] == "zoe@example.net")["name"] == "Zoë Z."
    wrong = admin(db, "members", "set", LIST, "zoe@example.net", "mode", "weekly")
    assert wrong.returncode == 1 and "regular, digest, nomail" in wrong.stderr

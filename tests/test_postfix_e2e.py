"""End to end with real mail software: a private Postfix instance on loopback ports in a temporary
directory (never the system's MTA), `maillist serve --lmtp` behind it, swaks posting, s-nail
replying, Maildirs read with Python's `mailbox`, and a DSN sent back to the bounce address.

Skipped, with the reason, when Postfix, swaks or s-nail are missing or we are not root (Postfix's
master must start as root); `.ci/run` installs them from Debian's packages."""

from __future__ import annotations

import contextlib
import json
import mailbox
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from serverutil import Server
from sink import RunningSink, Sink, free_port
from test_smtp_receive import admin

TOOLS = ("postfix", "postmap", "swaks", "s-nail")
missing = [t for t in TOOLS if shutil.which(t) is None]
pytestmark = [
    pytest.mark.skipif(
        bool(missing), reason=f"needs {', '.join(missing)} (apt-get install postfix swaks s-nail)"
    ),
    pytest.mark.skipif(
        os.geteuid() != 0, reason="Postfix's master process must be started as root"
    ),
]

LIST = "team@lists.example.org"
MEMBERS = ("anne", "bob", "carl")
JURGEN = "jürgen@members.example.net"  # an internationalised member (Postfix: smtputf8_enable)
DOMAIN = "members.example.net"
WAIT = 30.0


@dataclass
class Site:
    root: Path
    smtp_port: int
    db: Path
    maillist: Server

    def maildir(self, who: str) -> mailbox.Maildir:
        return mailbox.Maildir(str(self.root / "mail" / who), create=False)

    def count(self, who: str) -> int:
        """Messages delivered to `who` so far (0 before Postfix has made the Maildir)."""
        base = self.root / "mail" / who
        return sum(
            1 for sub in ("new", "cur") if (base / sub).is_dir() for _ in (base / sub).iterdir()
        )

    def swaks(self, *args: str) -> str:
        result = subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{self.smtp_port}", *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result.stdout


def wait_for(check: object, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


REFUSED = "dave@refusing.example"  # Postfix accepts his copy, then the next hop refuses him


def postfix_conf(root: Path, smtp_port: int, refusing_port: int) -> None:
    maps = root / "maps"
    (root / "main.cf").write_text(
        f"""compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
mail_owner = postfix
setgid_group = postdrop
shlib_directory = /usr/lib/postfix
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
myhostname = mx.lists.example.org
mydomain = lists.example.org
myorigin = lists.example.org
mydestination =
smtputf8_enable = yes
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
disable_dns_lookups = yes
smtp_host_lookup = native
recipient_delimiter = +
relay_domains = hash:{maps}/domains
relay_recipient_maps = hash:{maps}/recipients
transport_maps = hash:{maps}/transport, hash:{root}/unreachable
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = hash:{root}/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
"""
    )
    # The system's master.cf, with no chroot and smtpd on our loopback port only.
    lines = []
    for line in Path("/etc/postfix/master.cf").read_text().splitlines():
        fields = line.split()
        if fields[:2] == ["smtp", "inet"]:
            line = f"127.0.0.1:{smtp_port} inet n - n - - smtpd"
        elif (
            len(fields) >= 8
            and not line[:1].isspace()
            and not line.startswith("#")
            and fields[4] in {"y", "-"}
        ):
            fields[4] = "n"
            line = " ".join(fields)
        lines.append(line)
    (root / "master.cf").write_text("\n".join(lines) + "\n")
    # A domain Postfix refuses at RCPT (its `error:` transport), and one whose next hop (a sink
    # on loopback) refuses the recipient after Postfix took the copy: Postfix then writes a DSN.
    (root / "unreachable").write_text(
        "unreachable.example error:5.1.2 Domain not found\n"
        f"refusing.example smtp:[127.0.0.1]:{refusing_port}\n"
    )
    subprocess.run(["postmap", f"hash:{root}/unreachable"], check=True, timeout=60)
    mailboxes = (*MEMBERS, "dora")  # dora is not a member: she joins by email
    (root / "vmailbox").write_text(
        "".join(f"{m}@{DOMAIN} {m}/\n" for m in mailboxes) + f"{JURGEN} jurgen/\n"
    )
    subprocess.run(["postmap", f"hash:{root}/vmailbox"], check=True, timeout=60)


@pytest.fixture
def site() -> Iterator[Site]:
    root = Path(tempfile.mkdtemp(prefix="maillist-postfix-", dir="/var/tmp"))
    root.chmod(0o755)  # Postfix's daemons (postfix, nobody) must reach inside
    for sub in ("queue", "data", "mail", "maps"):
        (root / sub).mkdir()
    shutil.chown(root / "data", "postfix")
    shutil.chown(root / "mail", "nobody")
    db = root / "maillist.db"
    smtp_port, lmtp_port = free_port(), free_port()
    assert admin(db, "lists", "create", LIST, "--name", "Team").returncode == 0
    # Nobody signs here (no OpenDKIM in front): badges for every post that is not a forgery.
    assert admin(db, "lists", "set", LIST, "badges", "unless-forged").returncode == 0
    assert admin(db, "members", "add", LIST, f"anne@{DOMAIN}", "--name", "Anne").returncode == 0
    assert admin(db, "members", "add", LIST, f"bob@{DOMAIN}", f"carl@{DOMAIN}").returncode == 0
    assert admin(db, "members", "add", LIST, JURGEN, "--name", "Jürgen").returncode == 0
    assert admin(db, "badges", "grant", f"anne@{DOMAIN}", "Licensee Badge").returncode == 0
    maps = admin(db, "postfix-maps", "--out", str(root / "maps"), "--lmtp-port", str(lmtp_port))
    assert maps.returncode == 0, maps.stderr
    stack = contextlib.ExitStack()
    refusing = stack.enter_context(
        RunningSink(Sink(refuse={REFUSED: f"550 5.1.1 <{REFUSED}>: Recipient address rejected"}))
    )
    postfix_conf(root, smtp_port, refusing.port)
    started = subprocess.run(
        ["postfix", "-c", str(root), "start"], capture_output=True, text=True, timeout=60
    )
    master_pid_file = root / "queue" / "pid" / "master.pid"
    try:
        log = (root / "maillog").read_text()[-2000:] if (root / "maillog").exists() else ""
        assert started.returncode == 0, started.stderr + log
        wait_for(master_pid_file.exists, "Postfix's master to start")
        server = Server(db, "--lmtp", "--relay", f"127.0.0.1:{smtp_port}", "--port", str(lmtp_port))
        try:
            yield Site(root, smtp_port, db, server)
        finally:
            server.stop()
    finally:
        subprocess.run(["postfix", "-c", str(root), "stop"], capture_output=True, timeout=60)
        if master_pid_file.exists():
            pid = int(master_pid_file.read_text().split()[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stack.close()
        shutil.rmtree(root, ignore_errors=True)


def test_post_reply_and_bounce_through_real_postfix(site: Site) -> None:
    # 1-3. A post from a real client goes through Postfix to maillist and back out to every member.
    site.swaks(
        "--from", f"anne@{DOMAIN}", "--to", LIST, "--header", "Subject: Rotations",
        "--header", "Message-Id: <rotations-1@members.example.net>",
        "--body", "Should I ask for broader management roles?",
    )  # fmt: skip
    wait_for(lambda: all(site.count(m) == 1 for m in MEMBERS), "the post in three Maildirs")
    # The internationalised member's copy went through Postfix with SMTPUTF8.
    wait_for(lambda: site.count("jurgen") == 1, "the post in jürgen's Maildir")
    [utf8_copy] = [m.as_bytes() for m in site.maildir("jurgen")]
    assert f"Delivered-To: {JURGEN}".encode() in utf8_copy
    assert b"<rotations-1@members.example.net>" in utf8_copy
    # 4. Read it as the members' mail store has it.
    for member in MEMBERS:
        [copy] = list(site.maildir(member))
        msg = message_from_bytes(copy.as_bytes(), policy=default)
        assert msg["Message-ID"] == "<rotations-1@members.example.net>"
        assert msg["From"] == f"Anne <anne@{DOMAIN}>"  # the account's name
        assert msg["Subject"] == "[Team] Rotations"
        assert msg["List-Id"] == "Team <team.lists.example.org>"
        assert msg["List-Post"] == f"<mailto:{LIST}>"
        assert msg["X-Maillist-Badges"] == "Licensee Badge"
        assert msg["Return-Path"] == "<team-bounces@lists.example.org>"
        assert "Anne - Licensee Badge" in msg.get_content()
    # A member replies with a real mail client, which sets In-Reply-To and References itself.
    reply = subprocess.run(
        ["s-nail", "-#", "-S", f"mta=smtp://127.0.0.1:{site.smtp_port}", "-S", "smtp-auth=none",
         "-S", f"from=bob@{DOMAIN}", "-S", "sendwait", "-S", "v15-compat",
         "-f", str(site.root / "mail" / "bob") + "/"],
        input="reply 1\nKeep soaking up the experience.\n~.\nquit\n",
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert reply.returncode == 0, reply.stderr

    def list_copies_of_reply() -> list[EmailMessage]:
        found = []
        for stored in site.maildir("anne"):
            msg = message_from_bytes(stored.as_bytes(), policy=default)
            if (
                isinstance(msg, EmailMessage)
                and msg["List-Id"]
                and str(msg["Subject"]).startswith("Re:")
            ):
                found.append(msg)
        return found

    # s-nail replies to all: anne gets bob's reply directly and as the list's copy.
    wait_for(list_copies_of_reply, "the list's copy of the reply in anne's Maildir")
    [reply_copy] = list_copies_of_reply()
    assert reply_copy["In-Reply-To"] == "<rotations-1@members.example.net>"
    assert "<rotations-1@members.example.net>" in reply_copy["References"]
    assert reply_copy["Subject"] == "Re: [Team] Rotations"
    threads = json.loads(admin(site.db, "threads", LIST, "--json").stdout)
    [thread] = threads
    [root] = thread["roots"]
    assert root["message_id"] == "rotations-1@members.example.net"
    assert root["badges"] == ["Licensee Badge"]
    assert [r["author"]["address"] for r in root["replies"]] == [f"bob@{DOMAIN}"]
    # 5. A DSN for carl comes back through Postfix to the list's VERP bounce address, intact.
    dsn = (
        "From: MAILER-DAEMON@mx.example.net\r\nTo: team-bounces+carl=members.example.net@lists.example.org\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-1@mx.example.net>\r\n"
        "MIME-Version: 1.0\r\nAuto-Submitted: auto-replied\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"\r\n\r\n'
        "--dsn\r\nContent-Type: text/plain\r\n\r\nMailbox full.\r\n"
        "--dsn\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        "Final-Recipient: rfc822; carl@members.example.net\r\nAction: failed\r\nStatus: 5.2.2\r\n\r\n"
        "--dsn--\r\n"
    )
    site.swaks(
        "--from", "<>", "--to", "team-bounces+carl=members.example.net@lists.example.org",
        "--data", dsn.replace("\r\n", "\n"),
    )  # fmt: skip
    stored: list[tuple[object, ...]] = []

    def bounce_stored() -> bool:
        stored[:] = site.maillist.rows(
            "SELECT kind, recipient, raw FROM messages WHERE message_id = 'dsn-1@mx.example.net'"
        )
        return bool(stored)

    wait_for(bounce_stored, "the DSN to be stored")
    [(kind, recipient, raw)] = stored
    assert kind == "bounces"
    assert recipient == "team-bounces+carl=members.example.net@lists.example.org"
    assert isinstance(raw, bytes) and b"Final-Recipient: rfc822; carl@members.example.net" in raw
    assert b"Status: 5.2.2" in raw


def test_join_by_email_through_real_postfix(site: Site) -> None:
    """dora writes to -join through Postfix, answers the confirmation with s-nail (which replies
    to its Reply-To, LIST-confirm+CODE@, through Postfix's recipient_delimiter), and is welcomed."""
    site.swaks(
        "--from", f"dora@{DOMAIN}", "--to", "team-join@lists.example.org",
        "--header", "Subject: join please", "--body", "I would like to join.",
    )  # fmt: skip
    wait_for(lambda: site.count("dora") == 1, "the confirmation in dora's Maildir")
    [notice] = [message_from_bytes(m.as_bytes(), policy=default) for m in site.maildir("dora")]
    assert str(notice["Reply-To"]).startswith("team-confirm+")
    answer = subprocess.run(
        ["s-nail", "-#", "-S", f"mta=smtp://127.0.0.1:{site.smtp_port}", "-S", "smtp-auth=none",
         "-S", f"from=dora@{DOMAIN}", "-S", "sendwait", "-S", "v15-compat",
         "-S", "reply-to-honour=yes", "-f", str(site.root / "mail" / "dora") + "/"],
        input="Reply 1\nyes, that was me\n~.\nquit\n",
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr

    def welcomed() -> bool:
        subjects = [
            str(message_from_bytes(m.as_bytes(), policy=default)["Subject"])
            for m in site.maildir("dora")
        ]
        return any(s.startswith("Welcome") for s in subjects)

    wait_for(welcomed, "the welcome in dora's Maildir")
    listed = json.loads(admin(site.db, "members", "list", LIST, "--json").stdout)
    assert f"dora@{DOMAIN}" in [m["address"] for m in listed]


@pytest.mark.parametrize(
    ("address", "status", "said"),
    [
        ("carol@unreachable.example", "5.1.2", "Domain not found"),
        (REFUSED, "5.1.1", "Recipient address rejected"),
    ],
    ids=["refused-at-rcpt", "dsn-by-postfix"],
)
def test_a_member_postfix_cannot_deliver_to_gets_a_bounce_scored(
    site: Site, address: str, status: str, said: str
) -> None:
    """carol: Postfix refuses maillist's copy at RCPT (550 5.1.2, its own `error:` transport),
    and the refusal counts as her bounce. dave: Postfix takes the copy, the next hop refuses him
    (550 5.1.1), and Postfix's own DSN comes back through its LMTP route to the list's bounce
    address: parsed with flufl.bounce, matched to dave, scored."""
    added = admin(site.db, "members", "add", LIST, address)
    assert added.returncode == 0, added.stderr
    site.swaks(
        "--from", f"anne@{DOMAIN}", "--to", LIST, "--header", "Subject: Anyone there?",
        "--header", f"Message-Id: <dsn-{status}@members.example.net>", "--body", "Hello.",
    )  # fmt: skip

    def score() -> object:
        listed = json.loads(admin(site.db, "members", "list", LIST, "--json").stdout)
        return next(m for m in listed if m["address"] == address)["bounce_score"]

    wait_for(lambda: score() == 1.0, f"{address}'s bounce score to rise")
    bounces = json.loads(admin(site.db, "bounces", LIST, "--json").stdout)
    [seen] = [b for b in bounces if b["member"] == address]
    assert seen["kind"] == "hard" and seen["status"] == status and said in seen["diagnostic"]
    if address == REFUSED:
        [(envelope, raw)] = site.maillist.rows(
            "SELECT envelope_from, raw FROM messages WHERE kind = 'bounces'"
        )
        assert envelope == ""  # a DSN's null reverse-path
        assert isinstance(raw, bytes) and b"Reporting-MTA: dns; mx.lists.example.org" in raw

"""`maillist import mailman3` through a real Mailman 3 core's REST API: `mailman` from PyPI in a
venv of its own, started on loopback with its SQLite default, a list made and filled through
REST (members in each delivery mode and status, an owner, a moderator, nonmember rules, a ban, a
held post), imported, then Mailman stopped by its PID. Skipped with the reason where Mailman 3
cannot be installed."""

from __future__ import annotations

import gzip
import json
import os
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import dbutil
from conftest import CLI_TIMEOUT, clean_env
from mailman3env import PASSWORD, Mailman, missing
from serverutil import Server, wait_for
from sink import RunningSink, Sink
from test_import_mailman2 import MBOX

pytestmark = pytest.mark.skipif(bool(missing()), reason=missing() or "-")
LIST = "team@example.org"
LID = "team.example.org"


@pytest.fixture(scope="module")
def mailman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mailman]:
    server = Mailman(tmp_path_factory.mktemp("mailman3"))
    try:
        server.start()
        fill(server)
        yield server
    finally:
        server.stop()


def fill(mm: Mailman) -> None:
    mm.call("POST", "domains", {"mail_host": "example.org"})
    mm.call("POST", "lists", {"fqdn_listname": LIST})
    mm.call("PATCH", f"lists/{LID}/config", {
        "subject_prefix": "[Team] ", "display_name": "Team", "description": "The team",
        "reply_goes_to_list": "point_to_list", "max_message_size": "200",
        "default_member_action": "defer", "default_nonmember_action": "hold",
        "subscription_policy": "moderate", "archive_policy": "public",
        "send_welcome_message": "false",
        "accept_these_nonmembers": ["friend@example.net", "^.*@partner\\.example$"],
    })  # fmt: skip
    sub = {"list_id": LID, "pre_verified": "true", "pre_confirmed": "true", "pre_approved": "true",
           "send_welcome_message": "false"}  # fmt: skip
    mm.call("POST", "members", {**sub, "subscriber": "alice@example.com",
                                "display_name": "Alice Liddell"})  # fmt: skip
    mm.call("POST", "members", {**sub, "subscriber": "bob@example.com",
                                "display_name": "Bob Digest", "delivery_mode": "mime_digests"})  # fmt: skip
    mm.call("POST", "members", {**sub, "subscriber": "bea@example.com",
                                "delivery_mode": "plaintext_digests"})  # fmt: skip
    carol = mm.call("POST", "members", {**sub, "subscriber": "carol@example.com",
                                        "display_name": "Carol Nomail"})  # fmt: skip
    mm.call("PATCH", f"{carol}/preferences", {"delivery_status": "by_user"})
    mm.call("POST", "members", {**sub, "subscriber": "dave@example.com",
                                "display_name": "Dave Bounces", "delivery_status": "by_bounces"})  # fmt: skip
    erin = mm.call("POST", "members", {**sub, "subscriber": "erin@example.com"})
    mm.call("PATCH", erin, {"moderation_action": "hold"})
    mm.call("PATCH", f"{erin}/preferences", {"receive_own_postings": "false"})
    mm.call("POST", "members", {"list_id": LID, "subscriber": "owner@example.com",
                                "role": "owner", "display_name": "Olive Owner"})  # fmt: skip
    mm.call("POST", "members", {"list_id": LID, "subscriber": "mod@example.com",
                                "role": "moderator", "display_name": "Mo Derator"})  # fmt: skip
    spammer = mm.call("POST", "members", {"list_id": LID, "subscriber": "spammer@example.net",
                                          "role": "nonmember"})  # fmt: skip
    mm.call("PATCH", spammer, {"moderation_action": "discard"})
    mm.call("POST", f"lists/{LID}/bans", {"email": "banned@example.net"})
    with smtplib.LMTP("127.0.0.1", mm.lmtp_port, timeout=30) as lmtp:
        lmtp.sendmail("stranger@example.net", [LIST], (
            f"From: Stranger <stranger@example.net>\r\nTo: {LIST}\r\nSubject: let me in\r\n"
            "Message-ID: <held-1@example.net>\r\n\r\nPlease hold me.\r\n"
        ))  # fmt: skip
    wait_for(lambda: bool(mm.call("GET", f"lists/{LID}/held").get("total_size")),
             "Mailman to hold the stranger's post", 60)  # fmt: skip


def maillist(db: Path, *args: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "maillist", "--db", dbutil.location(db), *args],
        capture_output=True, text=True, timeout=CLI_TIMEOUT, check=False,
        env=clean_env(MAILMAN_REST_PASSWORD=password) if password else clean_env(),
    )  # fmt: skip


def test_a_mailman_3_list_comes_over_through_its_rest_api(
    mailman: Mailman, tmp_path: Path, db_path: Path
) -> None:
    mbox = tmp_path / "team.mbox.gz"  # as HyperKitty exports a list's history: gzipped
    mbox.write_bytes(gzip.compress(MBOX.replace(b"[Forum 1] ", b"[Team] ")))
    args = ("import", "mailman3", LIST, "--rest", mailman.url, "--archive", str(mbox))
    dry = maillist(db_path, *args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would be created" in dry.stdout and "nothing written" in dry.stdout
    for named in ("nonmember spammer@example.net moderation_action discard",
                  "1 bans (banned@example.net)",
                  "moderation_action hold for member erin@example.com",
                  "accept_these_nonmembers (friend@example.net"):  # fmt: skip
        assert named in dry.stderr, named
    assert PASSWORD not in dry.stdout + dry.stderr
    assert "held for moderation: 1 post(s) would be carried into the queue" in dry.stdout

    done = maillist(db_path, *args)
    assert done.returncode == 0, done.stderr
    assert "2 post(s) imported" in done.stdout
    listed = maillist(db_path, "members", "list", LIST, "--json")
    members = {m["address"]: m for m in json.loads(listed.stdout)}
    got = {a: (m["role"], m["mode"], m["status"], m["name"]) for a, m in members.items()}
    assert got == {
        "alice@example.com": ("member", "regular", "enabled", "Alice Liddell"),
        "bob@example.com": ("member", "digest", "enabled", "Bob Digest"),
        "bea@example.com": ("member", "digest", "enabled", ""),
        "carol@example.com": ("member", "nomail", "enabled", "Carol Nomail"),
        "dave@example.com": ("member", "regular", "disabled", "Dave Bounces"),
        "erin@example.com": ("member", "regular", "enabled", ""),
        "owner@example.com": ("owner", "nomail", "enabled", "Olive Owner"),
        "mod@example.com": ("moderator", "nomail", "enabled", "Mo Derator"),
    }
    shown = json.loads(maillist(db_path, "lists", "show", LIST, "--json").stdout)
    assert (shown["name"], shown["description"], shown["subject_prefix"]) == (
        "Team", "The team", "[Team]")  # fmt: skip
    assert (shown["reply_to"], shown["subscription"], shown["archive"], shown["posting"]) == (
        "list", "approve", "public", "members")  # fmt: skip
    assert shown["max_message_size"] == 200 * 1024

    held = json.loads(maillist(db_path, "moderation", "list", LIST, "--json").stdout)
    assert [(h["sender"], h["subject"]) for h in held] == [("stranger@example.net", "let me in")]
    assert held[0]["reason"] == "held in Mailman 3: The message is not from a list member"
    queue = json.loads(maillist(db_path, "queue", "--json").stdout)
    assert (queue["jobs_waiting"], queue["states"]) == (0, {})  # no notice, no post queued

    again = maillist(db_path, *args)
    assert "members added: none; already on the list: 8" in again.stdout
    assert "0 post(s) imported, 2 already there" in again.stdout
    assert (
        "held for moderation: 0 post(s) carried into the queue (no notices sent), 1 already"
        in again.stdout
    )

    with RunningSink(Sink()) as sink:
        server = Server(db_path, "--relay", f"127.0.0.1:{sink.port}")
        try:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
                client.sendmail("erin@example.com", [LIST], (
                    f"From: erin@example.com\r\nTo: {LIST}\r\nSubject: Moved\r\n"
                    "Message-ID: <moved3@example.com>\r\n\r\nHello from maillist.\r\n"
                ).encode())  # fmt: skip
            sink.wait(lambda s: len(s.rcpts()) >= 1)
        finally:
            server.stop()
    # alice only: erin asked not to get her own posts, bob and bea read digests, carol is
    # nomail, dave is disabled by bounces, the owner and moderator were not subscribed; and the
    # held post carried over sent its moderators no second notice
    assert sink.rcpts() == ["alice@example.com"]


def test_a_wrong_rest_password_or_unknown_list_is_one_clear_line(
    mailman: Mailman, db_path: Path
) -> None:
    wrong = maillist(db_path, "import", "mailman3", LIST, "--rest", mailman.url,
                     password="not-it")  # fmt: skip
    assert wrong.returncode != 0 and "Traceback" not in wrong.stderr
    assert "refused user 'restadmin'" in wrong.stderr and "not-it" not in wrong.stderr
    unknown = maillist(db_path, "import", "mailman3", "nope@example.org", "--rest", mailman.url)
    assert "Mailman has no list 'nope@example.org'" in unknown.stderr
    unset = maillist(db_path, "import", "mailman3", LIST, "--rest", mailman.url, password="")
    assert "set MAILMAN_REST_PASSWORD" in unset.stderr
    assert not os.environ.get("MAILMAN_REST_PASSWORD")

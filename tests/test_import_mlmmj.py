"""`maillist import mlmmj` on a list Debian's real mlmmj made, filled and archived: mlmmj-make-ml,
mlmmj-sub (regular, -d digest, -n nomail) and posts delivered by mlmmj-receive through a loopback
sink. The import keeps members, modes, roles, settings and threads with their dates, runs again
without change, and the imported list then delivers a post to exactly the members who should
get it."""

from __future__ import annotations

import json
import smtplib
import subprocess
from pathlib import Path

import pytest

from serverutil import Server
from sink import RunningSink, Sink
from test_smtp_receive import admin

MLMMJ = Path("/usr/bin")
pytestmark = pytest.mark.skipif(
    not (MLMMJ / "mlmmj-make-ml").exists(), reason="needs Debian's mlmmj (apt-get install mlmmj)"
)
LIST = "team@example.org"
TIMEOUT = 30

POSTS = (
    ("anne@example.org", "From: Anne Example <anne@example.org>\nSubject: Budgets\n"
     "Message-ID: <b1@example.org>\nDate: Tue, 02 Jan 2024 10:00:00 +0000\n\nThe budget.\n"),
    ("bob@example.org", "From: Bob Builder <bob@example.org>\nSubject: Re: Budgets\n"
     "Message-ID: <b2@example.org>\nIn-Reply-To: <b1@example.org>\n"
     "References: <b1@example.org>\nDate: Wed, 03 Jan 2024 09:30:00 +0100\n\nLooks fine.\n"),
    ("dora@example.net", "From: Dora <dora@example.net>\nSubject: Hiring\n"
     "Message-ID: <h1@example.net>\nDate: Sun, 05 May 2019 08:00:00 -0000\n\nWe hire.\n"),
)  # fmt: skip


def mlmmj(tool: str, *args: str, stdin: str = "") -> None:
    done = subprocess.run(
        [str(MLMMJ / tool), *args], input=stdin, capture_output=True, text=True, timeout=TIMEOUT,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, (tool, done.stdout, done.stderr)


def make_list(spool: Path, sink_port: int) -> Path:
    spool.mkdir()
    mlmmj("mlmmj-make-ml", "-s", str(spool), "-L", "team",
          stdin="example.org\nowner@example.org\nen\nn\n")  # fmt: skip
    listdir = spool / "team"
    for address, flag in (("anne@example.org", ""), ("bob@example.org", ""),
                          ("dora@example.net", "-d"), ("nina@example.net", "-n"),
                          ("Carl@Example.org", "")):  # fmt: skip
        mlmmj("mlmmj-sub", "-U", "-L", str(listdir), "-a", address, "-f", "-q", "-s",
              *([flag] if flag else []))  # fmt: skip
    control = listdir / "control"
    (control / "prefix").write_text("[team]\n")
    (control / "subonlypost").touch()
    (control / "modnonsubposts").touch()
    (control / "maxmailsize").write_text("2000000\n")
    (control / "maxverprecips").write_text("50\n")
    (control / "customheaders").write_text("Reply-To: team@example.org\nX-Team: yes\n")
    (control / "delheaders").write_text("Received:\n")
    (control / "moderators").write_text("mod@example.org\nbob@example.org\n")
    (control / "relayhost").write_text("127.0.0.1\n")
    (control / "smtpport").write_text(f"{sink_port}\n")
    with (listdir / "subscribers.d" / "z").open("a") as bad:
        bad.write("not an address\n")
    for sender, text in POSTS:
        mlmmj("mlmmj-receive", "-F", "-s", sender, "-L", str(listdir),
              stdin=f"To: {LIST}\n{text}")  # fmt: skip
    mlmmj(
        "mlmmj-receive",
        "-F",
        "-s",
        "zed@example.net",
        "-L",
        str(listdir),
        stdin=(
            f"To: {LIST}\nFrom: Zed <zed@example.net>\nSubject: Let me in\n"
            "Message-ID: <zed1@example.net>\nDate: Thu, 04 Jan 2024 10:00:00 +0000\n\nHold me.\n"
        ),
    )  # a non-subscriber's post: mlmmj holds it for its moderators (modnonsubposts)
    return listdir


def test_a_real_mlmmj_list_comes_over_with_members_settings_and_history(
    tmp_path: Path, db_path: Path
) -> None:
    with RunningSink(Sink()) as mlmmj_sink:
        listdir = make_list(tmp_path / "spool", mlmmj_sink.port)
        mlmmj_sink.wait(lambda s: len(s.received) >= 3)  # mlmmj sent each post to its members
    assert sorted(p.name for p in (listdir / "archive").iterdir()) == ["1", "2", "3"]
    assert len(list((listdir / "moderation").iterdir())) == 1  # zed's post, held by mlmmj

    dry = admin(db_path, "import", "mlmmj", str(listdir), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would be created" in dry.stdout and "nothing written (dry run)" in dry.stdout
    assert "3 post(s) would be imported" in dry.stdout
    assert "subscribers.d/z line 1" in dry.stderr  # the bad address, by file and line
    for named in ("control/delheaders", "control/customheaders X-Team", "control/relayhost"):
        assert f"not carried over: {named}" in dry.stderr
    nothing = admin(db_path, "lists", "show", LIST).stderr  # nothing written, not even a site
    assert "no such list" in nothing or "no database at" in nothing

    done = admin(db_path, "import", "mlmmj", str(listdir))
    assert done.returncode == 0, done.stderr
    assert "3 post(s) imported" in done.stdout
    assert "held for moderation: 1 post(s) carried into the queue" in done.stdout
    held = json.loads(admin(db_path, "moderation", "list", LIST, "--json").stdout)
    assert [(h["sender"], h["reason"]) for h in held] == [
        ("zed@example.net", "held in mlmmj for its moderators")]  # fmt: skip
    queue = json.loads(admin(db_path, "queue", "--json").stdout)
    assert (queue["jobs_waiting"], queue["states"]) == (0, {})  # no notice, no post queued
    members = {m["address"]: m for m in json.loads(
        admin(db_path, "members", "list", LIST, "--json").stdout)}  # fmt: skip
    got = {a: (m["role"], m["mode"]) for a, m in members.items()}
    assert got == {
        "anne@example.org": ("member", "regular"),
        "bob@example.org": ("moderator", "regular"),  # subscribed and a moderator
        "carl@example.org": ("member", "regular"),  # mlmmj-sub lower-cases
        "dora@example.net": ("member", "digest"),
        "nina@example.net": ("member", "nomail"),
        "mod@example.org": ("moderator", "nomail"),  # moderates, was never subscribed
        "owner@example.org": ("owner", "nomail"),
    }
    assert members["anne@example.org"]["name"] == "Anne Example"  # from her own archived post
    settings = json.loads(admin(db_path, "lists", "show", LIST, "--json").stdout)
    assert (settings["subject_prefix"], settings["posting"], settings["reply_to"]) == (
        "[team]", "members", "list")  # fmt: skip
    assert (settings["max_message_size"], settings["batch_size"]) == (2000000, 50)

    threads = json.loads(admin(db_path, "threads", LIST, "--json").stdout)
    by_subject = {t["subject"]: t for t in threads}
    budgets = by_subject["Budgets"]["roots"][0]
    assert budgets["date"].startswith("2024-01-02T10:00:00")
    assert [r["message_id"] for r in budgets["replies"]] == ["b2@example.org"]
    assert budgets["replies"][0]["date"].startswith("2024-01-03T08:30:00")  # +0100 kept as UTC
    assert by_subject["Hiring"]["roots"][0]["date"].startswith("2019-05-05T08:00:00")

    again = admin(db_path, "import", "mlmmj", str(listdir))
    assert again.returncode == 0, again.stderr
    assert "members added: none; already on the list: 7" in again.stdout
    assert "0 post(s) imported, 3 already there" in again.stdout
    assert "0 post(s) carried into the queue (no notices sent), 1 already there" in again.stdout
    assert "setting " not in again.stdout  # every setting already equal

    with RunningSink(Sink()) as sink:
        server = Server(db_path, "--relay", f"127.0.0.1:{sink.port}")
        try:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=TIMEOUT) as client:
                client.sendmail("anne@example.org", [LIST], (
                    f"From: Anne Example <anne@example.org>\r\nTo: {LIST}\r\nSubject: After\r\n"
                    "Message-ID: <after@example.org>\r\n\r\nFirst post on maillist.\r\n"
                ).encode())  # fmt: skip
            sink.wait(lambda s: len(s.rcpts()) >= 3)
            regular = sorted(sink.rcpts())
            digest = admin(db_path, "digests", "send", LIST)  # the digest reader gets it there
            assert "1 post(s) to 1 reader(s)" in digest.stdout, digest
            sink.wait(lambda s: "dora@example.net" in s.rcpts())
        finally:
            server.stop()
    # regular members only: not the digest reader, not nomail, not the unsubscribed staff; and
    # none of the imported history was sent again
    assert regular == ["anne@example.org", "bob@example.org", "carl@example.org"]
    assert sorted(sink.rcpts()) == [*regular, "dora@example.net"]  # never nina (nomail)
    assert all(b"after@example.org" in r.data for r in sink.received)

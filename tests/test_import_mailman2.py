"""`maillist import mailman2`: Mailman 2.1's config.pck (Python 2 pickles as cPickle wrote them:
Mailman 3's own test data where it is installed, and one written here opcode by opcode) plus its
pipermail mbox. Members keep names (in the list's charset), modes, disabled states and roles;
settings map or are named; the pickle is read as data and never runs anything."""

from __future__ import annotations

import email
import email.policy
import json
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest

import dbutil
from conftest import clean_env
from mailman3env import pck_files
from py2pickle import Instance, Py2Str, dumps, hostile
from serverutil import Server
from sink import RunningSink, Sink
from test_smtp_receive import admin

LIST = "forum@lists.example.org"
TIMEOUT = 30


def s(text: str, charset: str = "iso-8859-1") -> Py2Str:
    return Py2Str(text.encode(charset))


def config() -> bytes:
    members = {
        s("anne@example.org"): 0,
        s("bob@example.org"): s("Bob@Example.org"),  # the case the member gave
        s("nina@example.org"): 0,
        s("bouncy@example.org"): 0,
        s("paused@example.org"): 0,
        s("modflag@example.org"): 0,
    }
    return dumps({
        s("real_name"): s("Forum"),
        s("host_name"): s("lists.example.org"),
        s("preferred_language"): s("de"),
        s("description"): s("Café-Diskussion"),
        s("subject_prefix"): s("[Forum %d] "),
        s("members"): members,
        s("digest_members"): {s("dora@example.org"): 0},
        s("usernames"): {
            s("anne@example.org"): s("Anne Müller"),  # typed by email: bytes in the list's charset
            s("bob@example.org"): "Bøb Ŭnicode",  # typed on the web: Python 2 unicode
            s("dora@example.org"): s("Dora"),
        },
        s("user_options"): {
            s("nina@example.org"): 1, s("bouncy@example.org"): 1, s("paused@example.org"): 1,
            s("modflag@example.org"): 128 | 256, s("bob@example.org"): 2,
        },
        s("delivery_status"): {
            s("nina@example.org"): (2, 1300000000.0),  # by the member: nomail
            s("bouncy@example.org"): (4, 1300000000.0),  # by bounces
            s("paused@example.org"): (3, 1300000000.0),  # by the admin
        },
        s("owner"): [s("owner@example.org")],
        s("moderator"): [s("anne@example.org")],
        s("max_message_size"): 0,
        s("reply_goes_to_list"): 2,
        s("reply_to_address"): s("replies@example.org"),
        s("msg_footer"): s("%(real_name)s mailing list\n"),
        s("archive"): True,
        s("archive_private"): 1,
        s("subscribe_policy"): 3,
        s("generic_nonmember_action"): 2,
        s("ban_list"): [s("^.*@spam\\.example$")],
        s("accept_these_nonmembers"): [s("friend@example.com")],
        s("personalize"): 0,
        s("bounce_score_threshold"): 3.0,
        s("bounce_info_stale_after"): 864000,
        s("bounce_you_are_disabled_warnings"): 2,
        s("bounce_info"): {s("bouncy@example.org"): Instance(
            "Mailman.Bouncer", "_BounceInfo", {s("score"): 3.0, s("noticesleft"): 2})},
        s("passwords"): {s("anne@example.org"): s("hunter2-secret")},
        s("advertised"): True,
        s("next_digest_number"): 7,
    })  # fmt: skip


MBOX = (
    b"From anne@example.org Mon Mar  7 10:00:00 2011\n"
    b"From: Anne <anne@example.org>\nSubject: [Forum 1] Welcome\n"
    b"Message-ID: <w1@example.org>\nDate: Mon, 07 Mar 2011 10:00:00 +0000\n\nHello.\n"
    b">From the archive, quoted.\n\n"
    b"From bob@example.org Mon Mar  7 12:00:00 2011\n"
    b"From: bob@example.org\nSubject: Re: [Forum 1] Welcome\n"
    b"Message-ID: <w2@example.org>\nIn-Reply-To: <w1@example.org>\n"
    b"Date: Mon, 07 Mar 2011 12:00:00 +0000\n\nThanks.\n"
)


def write_list(root: Path) -> tuple[Path, Path]:
    (root / "lists" / "forum").mkdir(parents=True)
    pck = root / "lists" / "forum" / "config.pck"
    pck.write_bytes(config())
    mbox = root / "forum.mbox"
    mbox.write_bytes(MBOX)
    return pck, mbox


def test_a_mailman_2_list_comes_over_from_its_config_pck_and_mbox(
    tmp_path: Path, db_path: Path
) -> None:
    pck, mbox = write_list(tmp_path)
    dry = admin(db_path, "import", "mailman2", str(pck), "--archive", str(mbox), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    if not dbutil.POSTGRES:
        assert not db_path.exists()  # a dry run on a new host does not even create the site
    assert "forum@lists.example.org: would be created" in dry.stdout
    for named in ("subject_prefix '[Forum %d]'", "ban_list (^.*@spam", "accept_these_nonmembers",
                  "generic_nonmember_action 2", "Moderate flag on 1 member", "msg_footer text",
                  "advertised", "Mailman's own state"):  # fmt: skip
        assert named in dry.stderr, named
    assert "hunter2" not in dry.stdout + dry.stderr  # passwords are never carried or shown
    nothing = admin(db_path, "lists", "show", LIST).stderr
    assert "no such list" in nothing or "no database at" in nothing

    done = admin(db_path, "import", "mailman2", str(pck), "--archive", str(mbox))
    assert done.returncode == 0, done.stderr
    assert "2 post(s) imported" in done.stdout
    members = {m["address"]: m for m in json.loads(
        admin(db_path, "members", "list", LIST, "--json").stdout)}  # fmt: skip
    got = {a: (m["role"], m["mode"], m["status"]) for a, m in members.items()}
    assert got == {
        "anne@example.org": ("moderator", "regular", "enabled"),
        "Bob@example.org": ("member", "regular", "enabled"),
        "nina@example.org": ("member", "nomail", "enabled"),
        "bouncy@example.org": ("member", "regular", "disabled"),
        "paused@example.org": ("member", "regular", "disabled"),
        "modflag@example.org": ("member", "regular", "enabled"),
        "dora@example.org": ("member", "digest", "enabled"),
        "owner@example.org": ("owner", "nomail", "enabled"),
    }
    assert members["anne@example.org"]["name"] == "Anne Müller"  # Latin-1, the list's charset
    assert members["Bob@example.org"]["name"] == "Bøb Ŭnicode"
    assert members["bouncy@example.org"]["disabled_reason"] == "bounces"
    shown = json.loads(admin(db_path, "lists", "show", LIST, "--json").stdout)
    assert shown["name"] == "Forum" and shown["description"] == "Café-Diskussion"
    assert (shown["subject_prefix"], shown["reply_to"], shown["archive"]) == (
        "[Forum]", "replies@example.org", "private")  # fmt: skip
    assert (shown["subscription"], shown["posting"], shown["max_message_size"]) == (
        "approve", "members", 100 * 1024 * 1024)  # fmt: skip
    assert (shown["bounce_threshold"], shown["bounce_stale_days"], shown["bounce_warnings"]) == (
        3.0, 10, 2)  # fmt: skip
    thread = json.loads(admin(db_path, "threads", LIST, "--json").stdout)[0]["roots"][0]
    assert thread["date"].startswith("2011-03-07T10:00:00")
    assert [r["message_id"] for r in thread["replies"]] == ["w2@example.org"]

    again = admin(db_path, "import", "mailman2", str(pck), "--archive", str(mbox))
    assert "members added: none; already on the list: 8" in again.stdout
    assert "0 post(s) imported, 2 already there" in again.stdout

    with RunningSink(Sink()) as sink:
        server = Server(db_path, "--relay", f"127.0.0.1:{sink.port}")
        try:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=TIMEOUT) as client:
                client.sendmail("Bob@example.org", [LIST], (
                    f"From: Bob <Bob@example.org>\r\nTo: {LIST}\r\nSubject: Moved\r\n"
                    "Message-ID: <moved@example.org>\r\n\r\nWe are on maillist now.\r\n"
                ).encode())  # fmt: skip
            sink.wait(lambda s: len(s.rcpts()) >= 2)
        finally:
            server.stop()
    # enabled regular members; not Bob (he asked not to receive his own posts in Mailman),
    # not the digest reader, nomail, disabled or the unsubscribed owner
    assert sorted(sink.rcpts()) == ["anne@example.org", "modflag@example.org"]


def test_a_pickle_is_read_as_data_and_never_runs(tmp_path: Path, db_path: Path) -> None:
    marker = tmp_path / "ran"
    pck = tmp_path / "config.pck"
    pck.write_bytes(hostile(f"touch {marker}"))
    done = admin(db_path, "import", "mailman2", str(pck))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "is not a Mailman 2.1 config.pck" in done.stderr
    assert not marker.exists()
    odd = tmp_path / "lists" / "odd" / "config.pck"
    odd.parent.mkdir(parents=True)
    odd.write_bytes(dumps({s("real_name"): s("Odd"), s("host_name"): s("example.org"),
                           s("members"): [s("not a dict")], s("max_message_size"): s("40"),
                           s("bounce_info_stale_after"): float("inf"),
                           s("ban_list"): {s("a"): 1}}))  # fmt: skip
    assert admin(db_path, "import", "mailman2", str(odd)).returncode == 0  # odd values: defaults
    pck.write_bytes(b"not a pickle at all")
    bad = admin(db_path, "import", "mailman2", str(pck))
    assert "is not a readable Python pickle" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("name", ["config.pck", "config-with-instances.pck", "config-greek.pck"])
def test_mailman_3s_own_mailman_2_test_data_imports(db_path: Path, name: str) -> None:
    found = pck_files()
    if name not in found:
        pytest.skip(f"Mailman 3 (with its Mailman 2.1 test data) is not installed: {found}")
    done = admin(db_path, "import", "mailman2", str(found[name]))
    assert done.returncode == 0, done.stderr
    address = done.stdout.split(":", 1)[0]
    members = json.loads(admin(db_path, "members", "list", address, "--json").stdout)
    subscribed = [m for m in members if m["mode"] != "nomail"]
    assert len(subscribed) == 3 and all(m["name"] for m in subscribed), members  # usernames
    assert any(m["role"] == "owner" for m in members), members


def test_what_is_not_a_list_is_one_clear_line_and_nothing_written(
    tmp_path: Path, db_path: Path
) -> None:
    pck, _ = write_list(tmp_path)
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    for args, says in (
        (("mailman2", str(pck), "--archive", str(passwd)), "is not an mbox file"),
        (("mailman2", str(tmp_path / "nope.pck")), "cannot read"),
        (("mlmmj", str(tmp_path)), "is not an mlmmj list directory"),
    ):
        done = admin(db_path, "import", *args)
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "no such list" in admin(db_path, "lists", "show", LIST).stderr  # the mbox came last


def message(headers: list[tuple[bytes, bytes]], payload: object, **extra: object) -> Instance:
    """A Python 2 email.Message as Mailman 2.1 pickled it (Mailman.Message.Message, old-style)."""
    state: dict[object, object] = {
        s("_headers"): [(Py2Str(n), Py2Str(v)) for n, v in headers],
        s("_unixfrom"): Py2Str(b"From zed@example.com Mon Mar  7 10:00:00 2011"),
        s("_payload"): payload, s("_charset"): None, s("preamble"): None, s("epilogue"): None,
        s("defects"): [], s("_default_type"): s("text/plain"),
    }  # fmt: skip
    state.update({s(k): v for k, v in extra.items()})
    return Instance("Mailman.Message", "Message", state)


PICKLED = message(
    [(b"From", b"Zed =?iso-8859-1?q?M=FCller?= <zed@example.com>"), (b"To", LIST.encode()),
     (b"Subject", b"A long subject that Mailman's parser kept\n\tfolded as it came"),
     (b"Message-ID", b"<held-1@example.com>"), (b"MIME-Version", b"1.0"),
     (b"Content-Type", b'multipart/mixed; boundary="==b1=="')],
    [message([(b"Content-Type", b"text/plain; charset=iso-8859-1"),
              (b"Content-Transfer-Encoding", b"8bit")], Py2Str("Grüße from a non-member.\n".encode("latin-1"))),
     message([(b"Content-Type", b'application/pdf; name="plan.pdf"'),
              (b"Content-Transfer-Encoding", b"base64"),
              (b"Content-Disposition", b'attachment; filename="plan.pdf"')],
             Py2Str(b"JVBERi0xLjQKJcfsj6IK\n"))],
    preamble=Py2Str(b"This is a multi-part message in MIME format."), epilogue=Py2Str(b""),
)  # fmt: skip
TEXT = (b"From bea@example.com Mon Mar  7 11:00:00 2011\n"
        b"From: bea@example.com\nTo: forum@lists.example.org\nSubject: Too big?\n"
        b"Message-ID: <held-2@example.com>\n\nA post held as text.\n")  # fmt: skip


def write_held(root: Path) -> None:
    """Mailman 2.1's request queue beside the list, and the held posts' texts in data/."""
    data = root / "data"
    data.mkdir()
    (data / "heldmsg-forum-1.pck").write_bytes(dumps(PICKLED, protocol=1))
    (data / "heldmsg-forum-2.txt").write_bytes(TEXT)
    (root / "secret").write_bytes(TEXT.replace(b"held-2", b"stolen"))
    queue = {
        s("version"): (0, 1),
        1: (1, (1299492000.0, s("zed@example.com"), s("A long subject"),
                s("Post by non-member to a members-only list"), s("heldmsg-forum-1.pck"), {})),
        2: (1, (1299495600.0, s("bea@example.com"), s("Too big?"),
                "Message body is too big: 50 KB", s("heldmsg-forum-2.txt"), {})),
        3: (1, (1299495600.0, s("gone@example.com"), s("Gone"), s("Suspicious header"),
                s("heldmsg-forum-3.pck"), {})),
        4: (1, (1299495600.0, s("evil@example.com"), s("x"), s("x"), s("../secret"), {})),
        5: (2, (1299495600.0, s("newbie@example.com"), s("New Bie"), s("pw"), False, s("en"))),
        6: (3, (s("leaver@example.com"),)),
    }  # fmt: skip
    (root / "lists" / "forum" / "request.pck").write_bytes(dumps(queue, protocol=1))


def test_mailman_2_held_posts_come_into_the_moderation_queue(tmp_path: Path, db_path: Path) -> None:
    """request.pck and data/heldmsg-* as Mailman 2.1 wrote them (cPickle protocol 1): a pickled
    multipart post and a text one are held here with Mailman's reason and read back whole; a
    missing text, a file name that leaves data/ and pending joins and leaves are named."""
    pck, _ = write_list(tmp_path)
    write_held(tmp_path)
    done = admin(db_path, "import", "mailman2", str(pck))
    assert done.returncode == 0, done.stderr
    assert "held for moderation: 2 post(s) carried into the queue" in done.stdout
    assert "held 3 (gone@example.com)" in done.stderr and "--data" in done.stderr
    assert "'../secret' is not a file name Mailman writes" in done.stderr
    assert "join newbie@example.com, leave leaver@example.com" in done.stderr
    held = json.loads(admin(db_path, "moderation", "list", LIST, "--json").stdout)
    reasons = {h["message_id"]: h["reason"] for h in held}
    assert reasons == {
        "held-1@example.com": "held in Mailman 2.1: Post by non-member to a members-only list",
        "held-2@example.com": "held in Mailman 2.1: Message body is too big: 50 KB",
    }
    raw = subprocess.run(
        [sys.executable, "-m", "maillist", "--db", dbutil.location(db_path), "messages", "show",
         "held-1@example.com", "--raw"], capture_output=True, env=clean_env(), timeout=60,
    ).stdout  # fmt: skip
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    subject = " ".join(str(parsed["Subject"]).split())  # unfolded: the fold's tab stays
    assert subject == "A long subject that Mailman's parser kept folded as it came"
    assert parsed["From"].addresses[0].display_name == "Zed Müller"
    text, pdf = [p for p in parsed.walk() if not p.is_multipart()]
    assert text.get_content() == "Grüße from a non-member.\r\n"  # stored with CRLF, as SMTP
    assert pdf.get_filename() == "plan.pdf" and pdf.get_content().startswith(b"%PDF-1.4")
    again = admin(db_path, "import", "mailman2", str(pck))
    assert again.returncode == 0 and len(json.loads(
        admin(db_path, "moderation", "list", LIST, "--json").stdout)) == 2  # fmt: skip

    moved = tmp_path / "elsewhere"
    (tmp_path / "data").rename(moved)
    dry = admin(db_path, "import", "mailman2", str(pck), "--data", str(moved), "--dry-run")
    assert dry.returncode == 0 and "held 3 (gone" in dry.stderr and "held 1" not in dry.stderr


def test_a_pickled_post_that_holds_itself_is_a_problem_not_a_hang() -> None:
    """A pickle can make a part hold itself (its memo), or nest parts without end: flattening
    stops at a depth no real post reaches, with one clear error."""
    from maillist.errors import BadInput
    from maillist.sources import mailman2held, pickle2

    looped = pickle2.Opaque()
    looped.state = {b"_headers": [(b"Content-Type", b"multipart/mixed; boundary=x")]}
    looped.state[b"_payload"] = [looped]
    with pytest.raises(BadInput, match="not a pickled email message"):
        mailman2held.flatten(looped)
    with pytest.raises(BadInput):
        mailman2held.flatten([b"not", b"a message"])

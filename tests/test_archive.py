"""The web archive over real sockets: a running `maillist serve --http-port`, posts sent over
SMTP, pages fetched over HTTP. Threads read like a forum thread; hostile mail cannot script a
reader's browser; a private list's archive is closed to everyone but its signed-in members, on
every view; search, feeds, mbox in and out, and the static render."""

from __future__ import annotations

import io
import json
import mailbox
import re
import shutil
import smtplib
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from PIL import Image

import dbutil
from conftest import clean_env
from serverutil import Server
from sink import RunningSink, Sink
from test_smtp_receive import admin

TEAM, INNER = "team@example.org", "inner@example.org"
ANNE, BOB, CAROL = "anne@example.org", "bob@example.net", "carol@example.net"
MOD = "molly@example.org"
XSS = '<script>alert("x")</script>'


def mail(
    sender: str, mid: str, subject: str, body: str, *, to: str = TEAM, extra: str = ""
) -> bytes:
    return (
        f"From: Someone <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n"
        f"Date: Tue, 01 Dec 2026 1{len(mid) % 10}:00:00 +0000\r\n{extra}\r\n{body}"
    ).encode()


HOSTILE_HTML = (
    'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n',
    '--b\r\nContent-Type: multipart/related; boundary="r"\r\n\r\n'
    "--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    f'<p onclick="alert(1)">Hi {XSS}<img src="https://tracker.example/pixel.gif">'
    '<img src="cid:logo@x"><a href="javascript:alert(1)">click</a>'
    '<iframe src="https://evil.example/"></iframe><style>body{display:none}</style></p>\r\n'
    "--r\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    "iVBORw0KGgo=\r\n--r--\r\n"
    "--b\r\nContent-Type: text/html\r\n"
    'Content-Disposition: attachment; filename="\\"><img src=x onerror=alert(1)>.html"\r\n\r\n'
    f"{XSS}\r\n--b--\r\n",
)


@dataclass
class Site:
    db: Path
    server: Server
    sink: Sink
    web: httpx.Client
    base: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    db = tmp_path_factory.mktemp("archive") / "a.db"
    for args in (
        ("lists", "create", TEAM, "--name", "Team Talk", "--posting", "open"),
        ("lists", "set", TEAM, "archive", "public"),
        ("lists", "set", TEAM, "badges", "unless-forged"),  # the posts here are not signed
        ("lists", "create", INNER, "--name", "Inner Circle", "--posting", "open"),
        ("members", "add", TEAM, ANNE, "--name", "Anne Author"),
        ("members", "add", TEAM, BOB, "--name", f"Bob {XSS}"),
        ("members", "add", INNER, ANNE, "--name", "Anne Author"),
        ("members", "add", TEAM, MOD, "--name", "Molly Moderator", "--role", "moderator"),
        ("badges", "grant", ANNE, "Licensee Badge"),
        ("badges", "set", "Licensee Badge", "--colour", "#1a7f37", "--icon", "★"),
    ):
        done = admin(db, *args)
        assert done.returncode == 0, (args, done.stderr)
    with RunningSink(Sink()) as sink:
        server = Server(db, "--relay", f"127.0.0.1:{sink.port}", "--http-port", "0")
        base = f"http://127.0.0.1:{server.http_port}"
        for mlist in (TEAM, INNER):
            assert admin(db, "lists", "set", mlist, "web_url", base).returncode == 0
        try:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
                client.sendmail(ANNE, [TEAM], mail(ANNE, "q1@example.org", "Rotations?",
                    "I keep being moved.\r\nWhat now?\r\n\r\n-- \r\nAnne\r\n"))  # fmt: skip
                client.sendmail(BOB, [TEAM], mail(BOB, "r1/x@example.net", "Re: Rotations?",
                    "> I keep being moved.\r\nThat is how they grow you.\r\n",
                    extra="In-Reply-To: <q1@example.org>\r\nReferences: <q1@example.org>\r\n"))  # fmt: skip
                client.sendmail(ANNE, [TEAM], mail(ANNE, "r2@example.org", "Re: Rotations?",
                    "Thanks, see https://example.com/a?b=1&c=2 for more.\r\n",
                    extra="In-Reply-To: <r1/x@example.net>\r\nReferences: <q1@example.org> "
                          "<r1/x@example.net>\r\n"))  # fmt: skip
                client.sendmail(BOB, [TEAM], mail(BOB, "orphan@example.net", "Re: lost",
                    "Answering something the list never saw.\r\n",
                    extra="In-Reply-To: <never@example.org>\r\n"))  # fmt: skip
                client.sendmail(BOB, [TEAM], mail(BOB, "xss@example.net", f"Hello {XSS}",
                    HOSTILE_HTML[1], extra=HOSTILE_HTML[0]))  # fmt: skip
                client.sendmail(BOB, [TEAM], mail(BOB, "held@example.net", "Re: Rotations?",
                    "A reply that waits for a moderator.\r\n", extra="Precedence: bulk\r\n"
                    "In-Reply-To: <q1@example.org>\r\n"))  # fmt: skip
                client.sendmail(ANNE, [INNER], mail(ANNE, "secret@example.org", "Private plans",
                    "The secret word is marmalade.\r\n", to=INNER))  # fmt: skip
            sink.wait(lambda s: len(s.received) >= 6)
            with httpx.Client(base_url=base, timeout=10) as web:
                yield Site(db, server, sink, web, base)
        finally:
            server.stop()


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"script", "iframe", "object", "embed", "style"}:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{tag} {name}=")
            if name in {"href", "src", "action"} and (value or "").strip().lower().startswith(
                ("javascript:", "data:text", "vbscript:")
            ):
                self.found.append(f"{tag} {name}={value}")


def dangers(text: str) -> list[str]:
    """Elements and attributes that run script or restyle the page, as a browser parses them."""
    parser = _Elements()
    parser.feed(text)
    return parser.found


def page(site: Site, path: str, status: int = 200) -> str:
    response = site.web.get(path, follow_redirects=True)
    assert response.status_code == status, (path, response.status_code, response.text[:300])
    return response.text


def test_the_lists_page_shows_public_archives_only(site: Site) -> None:
    text = page(site, "/")
    assert "Team Talk" in text and "Inner Circle" not in text


def test_a_thread_reads_like_a_forum_thread(site: Site) -> None:
    listing = page(site, "/lists/team@example.org/")
    assert "Rotations?" in listing and "Anne Author" in listing and "Licensee Badge" in listing
    [thread] = re.findall(r'href="(/lists/team@example.org/thread/\d+)">Rotations\?', listing)
    text = page(site, thread)
    posts = re.findall(r'<article class="post depth-(\d)', text)
    assert posts == ["0", "1", "2"]  # the question, the reply, the reply to the reply
    assert (
        text.index("I keep being moved")
        < text.index("how they grow you")
        < text.index("Thanks, see")
    )
    assert '<li class="badge badge-' in text and "★" in text
    assert '<svg class="avatar"' in text  # drawn: nobody set a picture
    assert "Submitted by Anne Author" in text
    assert '<details class="quote"><summary>1 quoted line</summary>' in text
    assert '<details class="signature">' in text
    assert 'href="https://example.com/a?b=1&amp;c=2" rel="nofollow ugc noopener"' in text
    assert "bob@example.net" not in text  # addresses are not published
    css = site.web.get("/static/badges.css").text
    assert "li.badge.badge-" in css and "{ background: #1a7f37; }" in css


def test_a_parent_never_received_is_shown_as_missing(site: Site) -> None:
    text = page(site, "/lists/team@example.org/msg/orphan@example.net")
    assert "A message not in the archive" in text
    assert "Answering something the list never saw." in text


def test_permalinks_raw_and_a_slash_in_a_message_id(site: Site) -> None:
    """The permalink lands on the post: its thread, at the post (the fragment), which the page
    marks (CSS :target), not at the top of the thread."""
    landed = site.web.get("/lists/team@example.org/msg/r1%2Fx@example.net")
    assert landed.status_code == 303
    [(row, thread)] = site.server.rows(
        "SELECT id, thread_id FROM messages WHERE message_id = 'r1/x@example.net'"
    )
    assert landed.headers["location"] == f"/lists/team@example.org/thread/{thread}#m{row}"
    text = page(site, landed.headers["location"].split("#")[0])
    assert f'id="m{row}"' in text
    raw = site.web.get("/lists/team@example.org/msg/r1%2Fx@example.net/raw")
    assert raw.status_code == 200 and raw.headers["x-content-type-options"] == "nosniff"
    assert "Message-Id: <r1/x@example.net>" in raw.text  # an anonymous reader's copy
    page(site, "/lists/team@example.org/msg/nothing@example.org", 404)


def test_hostile_mail_cannot_run_script_in_a_readers_browser(site: Site) -> None:
    for path in ("/lists/team@example.org/", "/lists/team@example.org/msg/xss@example.net",
                 "/lists/team@example.org/feed.atom", "/lists/team@example.org/search?q=Hello"):  # fmt: skip
        response = site.web.get(path, follow_redirects=True)
        assert response.status_code == 200
        body = response.text
        assert dangers(body) == [], path
        assert "tracker.example" not in body  # a remote image tells the sender who read it
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
    text = page(site, "/lists/team@example.org/msg/xss@example.net")
    assert "&lt;script&gt;" in text  # the subject, shown as text
    [cid] = re.findall(r'<img src="(/lists/team@example.org/msg/xss@example.net/part/\d+)"', text)
    image = site.web.get(cid)
    assert image.headers["content-disposition"].startswith("attachment")
    [_logo, attachment] = re.findall(r'href="([^"]+/part/\d+)" download', text)
    evil = site.web.get(attachment)
    assert evil.headers["content-disposition"].startswith('attachment; filename="_')
    assert evil.headers["x-content-type-options"] == "nosniff"
    assert evil.headers["content-security-policy"].startswith("default-src 'none'")


def test_search_in_the_archive_and_on_the_command_line(site: Site) -> None:
    text = page(site, "/lists/team@example.org/search?q=grow")
    assert "<mark>grow</mark>" in text and "Re: Rotations?" in text
    found = admin(site.db, "search", TEAM, "moved", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert {h["message_id"] for h in hits} == {"q1@example.org", "r1/x@example.net"}
    assert hits[0]["thread_url"].startswith("/lists/team@example.org/thread/")
    by_author = json.loads(admin(site.db, "search", TEAM, "Anne", "--json").stdout)
    assert {h["message_id"] for h in by_author} >= {"q1@example.org", "r2@example.org"}
    odd = admin(site.db, "search", TEAM, 'NEAR( "x" OR ) *', "--json")  # FTS syntax is text
    assert odd.returncode == 0 and json.loads(odd.stdout) == []
    # Word forms: "rotate" finds "Rotations?", "growing" finds "grow".
    forms = json.loads(admin(site.db, "search", TEAM, "rotate", "--json").stdout)
    assert "q1@example.org" in {h["message_id"] for h in forms}
    assert "r1/x@example.net" in {h["message_id"] for h in json.loads(
        admin(site.db, "search", TEAM, "growing", "--json").stdout)}  # fmt: skip
    nowhere = admin(site.db, "search", "nope@example.org", "x")
    assert nowhere.returncode == 1 and "no such list: nope@example.org" in nowhere.stderr


def test_feeds_are_valid_atom(site: Site) -> None:
    feed = ET.fromstring(site.web.get("/lists/team@example.org/feed.atom").content)
    entries = feed.findall("{http://www.w3.org/2005/Atom}entry")
    assert len(entries) == 5


def test_a_private_archive_is_closed_on_every_view_until_a_member_signs_in(site: Site) -> None:
    inner = "/lists/inner@example.org/"
    [(thread,)] = site.server.rows(
        "SELECT thread_id FROM messages WHERE message_id = 'secret@example.org'"
    )
    closed = [inner, f"{inner}thread/{thread}", f"{inner}thread/{thread}.mbox",
              f"{inner}thread/{thread}.atom", f"{inner}msg/secret@example.org",
              f"{inner}msg/secret@example.org/raw", f"{inner}msg/secret@example.org/part/0",
              f"{inner}feed.atom", f"{inner}search?q=marmalade", f"{inner}2026/12/"]  # fmt: skip
    for path in closed:
        response = site.web.get(path)
        assert response.status_code == 403, path
        assert "marmalade" not in response.text and "Private plans" not in response.text
    # A stranger asking for a link gets the same answer, and no mail.
    asked = site.web.post("/signin", data={"address": CAROL, "next": inner})
    assert asked.status_code == 200 and "a sign-in link is on its way" in asked.text
    asked = site.web.post("/signin", data={"address": ANNE, "next": inner})
    assert asked.status_code == 200
    site.sink.wait(lambda s: any("sign-in link" in r.data.decode() for r in s.received))
    assert not any(CAROL in r.rcpts for r in site.sink.received)
    notice = next(r for r in site.sink.received if b"sign-in link" in r.data)
    assert notice.rcpts == [ANNE]
    [link] = re.findall(rf"{re.escape(site.base)}(/signin/[\w-]+)\?next=\S+", notice.data.decode())
    shown = site.web.get(link)  # what a mail scanner does: nothing happens
    assert shown.status_code == 200 and "Sign in as anne@example.org" in shown.text
    signed = site.web.post(link, data={"next": inner}, follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == inner
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    again = site.web.post(link, data={"next": inner}, follow_redirects=False)
    assert again.status_code == 400  # single use
    member = httpx.Client(base_url=site.base, cookies=signed.cookies, timeout=10)
    with member:
        for path in closed[:-3]:
            assert member.get(path, follow_redirects=True).status_code == 200, path
        assert "marmalade" in member.get(f"{inner}search?q=marmalade").text
        private = member.get(inner)
        assert private.headers["cache-control"] == "private, no-store"
        assert "Inner Circle" in member.get("/").text
    forged = httpx.Client(
        base_url=site.base, cookies={"maillist_session": "anne@example.org|9999999999|00"}
    )
    with forged:
        assert forged.get(inner).status_code == 403
    # Signing out ends the session everywhere: a copy of the cookie is worth nothing after.
    copied = httpx.Client(base_url=site.base, cookies=signed.cookies, timeout=10)
    with copied:
        assert copied.get(inner).status_code == 200
        leaving = httpx.Client(base_url=site.base, cookies=signed.cookies, timeout=10)
        with leaving:
            assert leaving.post("/signout", follow_redirects=False).status_code == 303
        assert copied.get(inner).status_code == 403


def test_sign_in_requests_cost_the_same_and_never_use_up_a_members_notices(
    site: Site,
) -> None:
    """The page answers before any work is done (a member's request and a stranger's take the
    same time); the links an address gets are capped on their own, and a client's requests
    too, so nobody can spend a member's notices (their confirmations, a leave) from the web."""

    def timed(address: str) -> float:
        started = time.monotonic()
        answer = httpx.post(f"{site.base}/signin", data={"address": address}, timeout=10)
        assert answer.status_code == 200 and "on its way" in answer.text
        return time.monotonic() - started

    member = [timed(BOB) for _ in range(5)]  # from this client: its first ten do work
    stranger = [timed(f"nobody{n}@example.com") for n in range(5)]
    assert statistics.median(member) < 2 * statistics.median(stranger) + 0.002, (member, stranger)
    [(links,)] = site.server.rows(
        "SELECT COUNT(*) FROM notices_sent WHERE address = ? AND kind = 'sign-in'", BOB
    )
    assert links == 3  # five asked, three sent: the sign-in cap, apart from other notices
    # Bob's own request still gets its answer: the sign-ins spent none of his five.
    with smtplib.SMTP("127.0.0.1", site.server.port, timeout=10) as client:
        client.sendmail(BOB, ["team-request@example.org"], mail(
            BOB, "info@example.net", "info", "", to="team-request@example.org"))  # fmt: skip
    site.sink.wait(lambda s: any(BOB in r.rcpts and b"results" in r.data for r in s.received))


def test_every_response_carries_the_security_headers(site: Site) -> None:
    for path in ("/nowhere", "/unsubscribe/team@example.org/bad", "/healthz", "/"):
        response = site.web.get(path)
        assert "default-src 'none'" in response.headers["content-security-policy"], path
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["x-content-type-options"] == "nosniff", path


def test_metrics_are_for_this_host_only(site: Site) -> None:
    assert site.web.get("/metrics").status_code == 200  # a scraper on loopback
    proxied = site.web.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 404  # a visitor through the proxy in front


def test_feed_links_never_follow_a_forged_host(site: Site) -> None:
    feed = site.web.get(f"/lists/{TEAM}/feed.atom", headers={"Host": "evil.example"})
    assert feed.status_code == 200
    assert "evil.example" not in feed.text and site.base in feed.text


def test_mbox_export_reads_back_and_imports_as_history(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "team.mbox"
    done = admin(site.db, "archive", "export", TEAM, str(out))
    assert done.returncode == 0 and "5 message(s)" in done.stdout, done.stderr
    box = mailbox.mbox(out)
    stored: dict[object, object] = {
        mid: raw
        for mid, raw in site.server.rows(
            "SELECT message_id, raw FROM messages WHERE list_id = 1 AND verdict = 'accept' "
            "AND kind = 'post'"
        )
    }
    read = {m["Message-ID"].strip("<>"): box.get_bytes(k) for k, m in box.items()}
    assert read.keys() == stored.keys()
    for mid, data in read.items():
        raw = stored[mid]
        assert isinstance(raw, bytes) and data == raw.replace(b"\r\n", b"\n"), mid
    box.close()
    if shutil.which("s-nail"):  # a real mail client reads it and copies every message out again
        copied = tmp_path / "copied.mbox"
        subprocess.run(
            ["s-nail", "-#", "-N", "-R", "-f", str(out)], input=f"copy * {copied}\n".encode(),
            check=True, timeout=30, capture_output=True,
        )  # fmt: skip
        client_box = mailbox.mbox(copied)
        got = {m["Message-ID"].strip("<>"): client_box.get_bytes(k) for k, m in client_box.items()}
        assert got == read
        client_box.close()
    # Into a new list: threaded as live mail, never redistributed.
    assert admin(site.db, "lists", "create", "history@example.org").returncode == 0
    dry = admin(site.db, "archive", "import", "history@example.org", str(out), "--dry-run")
    assert dry.returncode == 0 and "nothing written" in dry.stdout, dry.stderr
    first = admin(site.db, "archive", "import", "history@example.org", str(out))
    assert "5 imported, 0 duplicate(s)" in first.stdout, first.stdout + first.stderr
    again = admin(site.db, "archive", "import", "history@example.org", str(out))
    assert "0 imported, 5 duplicate(s)" in again.stdout
    [(jobs,)] = site.server.rows(
        "SELECT COUNT(*) FROM outbound_jobs j JOIN lists l ON l.id = j.list_id "
        "WHERE l.address = 'history@example.org'"
    )
    assert jobs == 0
    [(parent,)] = site.server.rows(
        "SELECT p.message_id FROM messages m JOIN messages p ON p.id = m.parent_id "
        "JOIN lists l ON l.id = m.list_id WHERE l.address = 'history@example.org' "
        "AND m.message_id = 'r2@example.org'"
    )
    assert parent == "r1/x@example.net"


def test_import_reports_what_it_cannot_use_and_goes_on(site: Site, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mbox"
    broken.write_bytes(
        b"From a@b Thu Jan  1 00:00:00 1970\nFrom: a@example.org\nSubject: one\n"
        b"Message-ID: <imp1@example.org>\nDate: not a date\n\nfine\n\n"
        b"From a@b Thu Jan  1 00:00:00 1970\nthis is not a header\n\nbody\n\n"
        b"From a@b Thu Jan  1 00:00:00 1970\nFrom: a@example.org\nSubject: three\n\nno id\n\n"
        # Python's formatdate() writes "-0000": UTC, zone unknown. A real date all the same.
        b"From a@b Thu Jan  1 00:00:00 1970\nFrom: Old Timer <old@elsewhere.example>\n"
        b"Subject: four\nMessage-ID: <imp4@example.org>\n"
        b"Date: Tue, 01 Oct 2019 10:00:00 -0000\n\nfrom long ago\n\n"
    )
    assert admin(site.db, "lists", "create", "broken@example.org").returncode == 0
    assert admin(site.db, "lists", "set", "broken@example.org", "archive", "public").returncode == 0
    dry = admin(site.db, "archive", "import", "broken@example.org", str(broken), "--dry-run")
    assert "message 1: bad or missing Date" in dry.stderr
    assert "message 2: cannot be imported" in dry.stderr and "unescaped 'From '" in dry.stderr
    assert "message 3: no Message-ID" in dry.stderr
    assert "message 4" not in dry.stderr  # -0000 is a date
    assert "554" not in dry.stderr and "5.6.0" not in dry.stderr  # what is wrong, not a code
    done = admin(site.db, "archive", "import", "broken@example.org", str(broken))
    assert "3 imported" in done.stdout and "message 2: skipped" in done.stderr
    assert "554" not in done.stderr
    [(date,)] = site.server.rows("SELECT date FROM messages WHERE message_id = 'imp4@example.org'")
    assert str(date).startswith("2019-10-01T10:00:00")
    [(thread,)] = site.server.rows(
        "SELECT thread_id FROM messages WHERE message_id = 'imp4@example.org'"
    )
    shown = page(site, f"/lists/broken@example.org/thread/{thread}")
    assert "Old Timer" in shown  # an imported author without an account: their From's name


def test_static_render_writes_the_pages_and_only_changes_next_time(
    site: Site, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    first = admin(site.db, "archive", "render", TEAM, str(out))
    assert first.returncode == 0 and "3 thread(s) written, 0 unchanged" in first.stdout, first
    assert (out / "static" / "archive.css").is_file()
    index = (out / "lists" / "team@example.org" / "index.html").read_text()
    assert "Rotations?" in index and "/signin" not in index
    thread = next((out / "lists" / "team@example.org" / "thread").glob("*/index.html")).read_text()
    assert "Submitted by" in thread
    assert (out / "lists" / "team@example.org" / "msg" / "q1@example.org" / "index.html").is_file()
    second = admin(site.db, "archive", "render", TEAM, str(out))
    assert "0 thread(s) written, 3 unchanged" in second.stdout
    private = admin(site.db, "archive", "render", INNER, str(out))
    assert private.returncode != 0 and "only a public archive" in private.stderr


def test_pictures_are_resized_served_long_and_bombs_refused(site: Site, tmp_path: Path) -> None:
    picture = tmp_path / "anne.png"
    Image.new("RGB", (300, 200), (200, 30, 30)).save(picture)
    done = admin(site.db, "people", "set-picture", ANNE, str(picture))
    assert done.returncode == 0, done.stderr
    text = page(site, "/lists/team@example.org/msg/q1@example.org")
    [src] = set(re.findall(r'<img class="avatar" src="(/pictures/[\w-]+)"', text))
    assert "anne" not in src  # the URL says nothing about the address
    served = site.web.get(src)
    assert served.headers["cache-control"].startswith("public, max-age=31536000")
    assert Image.open(io.BytesIO(served.content)).size == (128, 128)
    assert site.web.get("/pictures/1-0000").status_code == 404
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)
    refused = admin(site.db, "people", "set-picture", ANNE, str(bomb))
    assert refused.returncode != 0 and "pixels" in refused.stderr
    bad = admin(site.db, "badges", "set", "Licensee Badge", "--colour", "red;}body{x")
    assert bad.returncode != 0 and "#rrggbb" in bad.stderr


def sign_in(site: Site, address: str, next_path: str) -> httpx.Client:
    """The emailed link, as its reader follows it: a client with the session cookie."""
    before = len(site.sink.received)
    assert site.web.post("/signin", data={"address": address, "next": next_path}).status_code == 200
    site.sink.wait(lambda s: any(
        address in r.rcpts and b"sign-in link" in r.data for r in s.received[before:]))  # fmt: skip
    notice = next(r for r in site.sink.received[before:] if address in r.rcpts)
    [link] = re.findall(rf"{re.escape(site.base)}(/signin/[\w-]+)", notice.data.decode())
    signed = site.web.post(link, data={"next": next_path}, follow_redirects=False)
    assert signed.status_code == 303
    return httpx.Client(base_url=site.base, cookies=signed.cookies, timeout=10)


def test_moderators_see_held_posts_marked_and_nobody_else_does(site: Site) -> None:
    thread = "/lists/team@example.org/msg/q1@example.org"
    assert "waits for a moderator" not in page(site, thread)
    with sign_in(site, MOD, thread) as moderator:
        text = moderator.get(thread, follow_redirects=True).text
        assert "A reply that waits for a moderator." in text
        assert "Held for moderation" in text, re.findall(r"<article[^>]*>", text)
        assert "post depth-1 held" in text, re.findall(r"<article[^>]*>", text)
    with sign_in(site, ANNE, thread) as member:  # a member, not a moderator
        assert "waits for a moderator" not in member.get(thread, follow_redirects=True).text


def test_import_streams_caps_each_message_and_refuses_what_is_no_mbox(
    site: Site, tmp_path: Path
) -> None:
    """A 100 MB message in an mbox costs the import no more memory than the list's size limit
    (it is skipped, by position, as SMTP would refuse it); a file that is no mbox is said to be
    one, not read as an empty archive."""
    huge = tmp_path / "huge.mbox"
    line = b"x" * 999 + b"\n"
    with huge.open("wb") as out:
        out.write(
            b"From a@b Thu Jan  1 00:00:00 1970\nFrom: a@example.org\nSubject: before\n"
            b"Message-ID: <huge1@example.org>\nDate: Tue, 01 Dec 2026 10:00:00 +0000\n\nhi\n\n"
        )
        out.write(b"From a@b Thu Jan  1 00:00:00 1970\nFrom: a@example.org\nSubject: big\n\n")
        for _ in range(100 * 1024):
            out.write(line)
        out.write(b"\nFrom a@b Thu Jan  1 00:00:00 1970\nFrom: a@example.org\nSubject: after\n"
                  b"Message-ID: <huge3@example.org>\nDate: Tue, 01 Dec 2026 11:00:00 +0000\n\nho\n")  # fmt: skip
    assert admin(site.db, "lists", "create", "huge@example.org").returncode == 0
    measured = subprocess.run(
        [sys.executable, "-c", (
            "import sys\nfrom maillist.cli import main\n"
            f"sys.argv = ['maillist', '--db', {dbutil.location(site.db)!r}, 'archive', 'import', "
            f"'huge@example.org', {str(huge)!r}]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
            # VmHWM, not ru_maxrss: the latter keeps the forking parent's size across exec.
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
            "print('peak', hwm.split()[1], file=sys.stderr)\n"
        )],
        capture_output=True, text=True, timeout=120, env=clean_env(),
    )  # fmt: skip
    assert "2 imported" in measured.stdout, measured.stdout + measured.stderr
    assert (
        "message 2: skipped: 102,400,035 bytes" in measured.stderr
        and "max_message_size" in measured.stderr
    )
    peak_kib = int(measured.stderr.rsplit("peak", 1)[1])
    assert peak_kib < 150 * 1024, f"the import peaked at {peak_kib // 1024} MiB"
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    refused = admin(site.db, "archive", "import", "huge@example.org", str(passwd))
    assert refused.returncode == 1 and "is not an mbox file" in refused.stderr


ADDRESS = re.compile(r"[\w.+%'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def test_an_anonymous_reader_sees_no_members_address_anywhere(site: Site) -> None:
    """Pages, raw messages, parts, a thread's mbox, feeds and search: a public archive shows
    what people wrote, never where to mail them. Only the list's own addresses appear."""
    with smtplib.SMTP("127.0.0.1", site.server.port, timeout=10) as client:
        client.sendmail(ANNE, [TEAM], mail(ANNE, "quoting@example.org", "Re: Rotations?", (
            "Agreed.\r\n\r\n-----Original Message-----\r\nFrom: Bob <bob@example.net>\r\n"
            "Sent: Tuesday\r\nTo: team@example.org\r\n\r\nOn Tue, Anne <anne@example.org> "
            "wrote:\r\n> mail carol@example.net about it\r\n"),
            extra="In-Reply-To: <q1@example.org>\r\nCc: carol@example.net\r\n"))  # fmt: skip
    [(thread,)] = site.server.rows(
        "SELECT thread_id FROM messages WHERE message_id = 'quoting@example.org'"
    )
    base = f"/lists/{TEAM}/"
    paths = [
        "/", base, f"{base}thread/{thread}", f"{base}thread/{thread}.mbox",
        f"{base}thread/{thread}.atom", f"{base}feed.atom", f"{base}msg/quoting@example.org",
        f"{base}msg/quoting@example.org/raw", f"{base}msg/q1@example.org/raw",
        f"{base}search?q=agreed", f"{base}2026/12/", f"{base}join",
    ]  # fmt: skip
    ids = {str(m) for (m,) in site.server.rows("SELECT message_id FROM messages")}
    ids |= {quote(m, safe="@") for m in ids}  # as permalinks write them
    lists = [str(a).split("@")[0] for (a,) in site.server.rows("SELECT address FROM lists")]
    anonymous = httpx.Client(base_url=site.base, timeout=10)  # no cookie from earlier tests
    for path in paths:
        response = anonymous.get(path, follow_redirects=True)
        assert response.status_code == 200, path
        found = set(ADDRESS.findall(response.text))
        shown = {
            a for a in found
            if a not in ids and not any(i.endswith(a) for i in ids)
            and a.split("@")[0].split("-")[0] not in lists  # the lists' own, to write to
        }  # fmt: skip
        assert not shown, (path, shown)
    raw = anonymous.get(f"{base}msg/quoting@example.org/raw").text
    folded = anonymous.get(f"{base}thread/{thread}").text  # Outlook's original: folded away
    anonymous.close()
    assert "<summary>The message this answers</summary>" in folded
    assert "Agreed." in raw and "anne@\u2026" in raw  # the text is there, the addresses are not
    with sign_in(site, ANNE, base) as member:  # the list's members read posts whole
        whole = member.get(f"{base}msg/quoting@example.org/raw").content
        assert b"carol@example.net" in whole and b"From: Someone <anne@example.org>" in whole
    [(stored,)] = site.server.rows(
        "SELECT raw FROM messages WHERE message_id = 'quoting@example.org'"
    )
    assert whole == stored


def test_sign_in_works_on_a_list_with_no_post_and_says_so_where_it_cannot(
    tmp_path: Path,
) -> None:
    db = tmp_path / "new.db"
    for args in (
        ("lists", "create", "new@example.org", "--name", "New"),
        ("members", "add", "new@example.org", ANNE),
    ):
        assert admin(db, *args).returncode == 0
    with RunningSink(Sink()) as sink:
        server = Server(db, "--relay", f"127.0.0.1:{sink.port}", "--http-port", "0")
        base = f"http://127.0.0.1:{server.http_port}"
        try:
            with httpx.Client(base_url=base, timeout=10) as web:
                # No list has a web address: said plainly, to everyone alike.
                asked = web.post("/signin", data={"address": ANNE})
                assert "not set up on this site" in asked.text
                assert admin(db, "lists", "set", "new@example.org", "web_url", base).returncode == 0
                asked = web.post("/signin", data={"address": ANNE})
                assert "on its way" in asked.text
            sink.wait(lambda s: any(b"/signin/" in r.data for r in s.received if ANNE in r.rcpts))
        finally:
            server.stop()

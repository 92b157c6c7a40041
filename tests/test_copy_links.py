"""Every address and URL maillist writes into a copy is one maillist accepts.

A copy's List-* headers, its envelope sender and its footer are walked: each mailto address is
offered to the running server at RCPT (over SMTP), each https link is fetched from the server's
own HTTP port. Then the one-click unsubscribe (RFC 8058) is used for real: GET changes nothing,
POST unsubscribes, a forged token gets 400 and changes nothing."""

from __future__ import annotations

import json
import re
import smtplib
import urllib.error
import urllib.request
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from serverutil import Server, message
from sink import RunningSink, Sink
from test_delivery import post, setup_team, sink_port
from test_smtp_receive import admin

PUBLIC = "https://lists.example.org"
_BRACKETED = re.compile(r"<([^<>]+)>")
_IN_TEXT = re.compile(r"(https?://\S+|[\w.+=-]+@[\w.-]+\.[a-z]+)")


def links(copy: EmailMessage, envelope_from: str) -> tuple[set[str], set[str]]:
    """(addresses, urls) a member could use: List-* headers, the envelope sender, the footer."""
    found: set[str] = {envelope_from}
    for name, value in copy.items():
        if (name.lower().startswith("list-") and name.lower() != "list-id") or name.lower() == (
            "archived-at"
        ):
            found.update(_BRACKETED.findall(str(value)))
    body = copy.get_body(("plain",))
    assert body is not None
    footer = body.get_content().replace("\r\n", "\n").split("\n-- \n", 1)[1]
    found.update(_IN_TEXT.findall(footer))
    addresses = {v.removeprefix("mailto:").split("?")[0] for v in found if not v.startswith("http")}
    urls = {v for v in found if v.startswith("http")}
    return addresses, urls


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def one_click(url: str, body: bytes = b"List-Unsubscribe=One-Click") -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def members(db: Path) -> set[str]:
    out = admin(db, "members", "list", "team@example.org", "--json").stdout
    return {m["address"] for m in json.loads(out)}


def test_every_address_and_url_in_a_copy_is_routable(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    setup_team(
        db,
        ("lists", "set", "team@example.org", "personalize", "yes"),
        ("lists", "set", "team@example.org", "web_url", PUBLIC),
        ("lists", "create", "plain@example.org", "--posting", "open"),
        ("members", "add", "plain@example.org", "kim@example.org"),
    )
    with RunningSink(Sink()) as sink:
        srv = Server(db, "--relay", f"127.0.0.1:{sink_port(sink)}", "--http-port", "0")
        try:
            local = f"http://127.0.0.1:{srv.http_port}"
            post(srv.port, message(sender="anne@example.org", message_id="links-1@example.org"))
            post(
                srv.port,
                message(
                    sender="anne@example.org",
                    message_id="links-2@example.org",
                    to="plain@example.org",
                ),
                rcpt="plain@example.org",
            )
            sink.wait(lambda s: len(s.received) >= 4)
            every_address: set[str] = set()
            every_url: set[str] = set()
            for received in sink.received:
                copy = message_from_bytes(received.data, policy=default)
                assert isinstance(copy, EmailMessage)
                addresses, urls = links(copy, received.mail_from)
                every_address |= addresses - set(received.rcpts)  # "you receive this as ..."
                every_url |= urls
            # the list, -request (help), -join, -leave, -leave+TOKEN, -bounces, -bounces+VERP
            assert any("-leave+" in a for a in every_address)
            assert any("-bounces+" in a for a in every_address)
            # one one-click link per personalised copy, the archive (List-Archive) and the post's
            # permalink (Archived-At, RFC 5064)
            assert len(every_url) == 5
            with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as client:
                client.ehlo()
                for address in sorted(every_address):
                    client.mail("someone@example.net")
                    code, reply = client.rcpt(address)
                    assert code == 250, (address, reply)
                    client.rset()
            archive = {f"{PUBLIC}/lists/team@example.org/",
                       f"{PUBLIC}/lists/team@example.org/msg/links-1@example.org"}  # fmt: skip
            assert archive <= every_url
            for url in sorted(every_url - archive):
                assert url.startswith(f"{PUBLIC}/unsubscribe/team@example.org/")
                status, page = get(url.replace(PUBLIC, local))
                assert status == 200 and "Unsubscribe from Team?" in page, (url, page)
            for url in sorted(archive):  # a private archive (the default): members sign in
                status, page = get(url.replace(PUBLIC, local))
                assert status == 403 and "Members only" in page and "/signin?next=" in page
            assert members(db) >= {"anne@example.org", "bob@example.org", "erin@other.example"}
        finally:
            srv.stop()


def test_one_click_unsubscribe(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    setup_team(
        db,
        ("lists", "set", "team@example.org", "personalize", "yes"),
        ("lists", "set", "team@example.org", "web_url", PUBLIC),
    )
    with RunningSink(Sink()) as sink:
        srv = Server(db, "--relay", f"127.0.0.1:{sink_port(sink)}", "--http-port", "0")
        try:
            local = f"http://127.0.0.1:{srv.http_port}"
            post(srv.port, message(sender="anne@example.org", message_id="click-1@example.org"))
            sink.wait(lambda s: len(s.received) >= 3)
            by_rcpt = {
                m.rcpts[0]: message_from_bytes(m.data, policy=default) for m in sink.received
            }
            [bob_url] = [
                u for u in _BRACKETED.findall(str(by_rcpt["bob@example.org"]["List-Unsubscribe"]))
                if u.startswith("https")
            ]  # fmt: skip
            url = bob_url.replace(PUBLIC, local)
            # A GET (what a link scanner does) shows the button and changes nothing.
            status, page = get(url)
            assert status == 200 and "bob@example.org" in page and '<form method="post"' in page
            assert "bob@example.org" in members(db)
            # Forged, truncated and another member's tokens: 400, nothing changes.
            token = url.rsplit("/", 1)[1]
            forged = token[:-1] + ("a" if token[-1] != "a" else "b")
            for bad in (forged, token[:10], "1x" + "a" * 26, token + "x"):
                assert one_click(url.rsplit("/", 1)[0] + "/" + bad)[0] == 400
            assert one_click(url.replace("team@example.org", "other@example.org"))[0] == 400
            assert one_click(url, b"List-Unsubscribe=No")[0] == 400
            assert "bob@example.org" in members(db)
            # The RFC 8058 POST unsubscribes at once.
            status, page = one_click(url)
            assert status == 200 and "You are unsubscribed" in page
            assert "bob@example.org" not in members(db)
            assert members(db) >= {"anne@example.org", "erin@other.example"}
            status, page = one_click(url)  # used again: the member is simply gone
            assert status == 200 and "Already unsubscribed" in page
            audit = admin(db, "audit", "--json").stdout
            assert '"members.unsubscribe"' in audit and '"one-click"' in audit
        finally:
            srv.stop()

"""The archive in a real browser: Debian's chromium, headless, driven by Playwright against a
running `maillist serve --http-port`. The lists page, a thread with names, badges and pictures
visible, a permalink, a search, and a private list refused then readable after the emailed
sign-in link; no CSP violation or script error anywhere; usable at a phone's 375 px.

Screenshots at desktop and phone widths are saved to build/screenshots/ (look at them).
Skipped, with the reason, where chromium or Playwright is not installed (.ci/run installs both)."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from serverutil import Server
from sink import RunningSink, Sink
from test_smtp_receive import admin

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )

TEAM, INNER = "team@example.org", "inner@example.org"
POSTS = [
    ("anne@example.org", "b1@example.org", "", "Should I ask for a broader role?",
     "Hello - I am a junior manager with a good track record, but each time I achieve\r\n"
     "something with one team I am rotated to another project.\r\n\r\n"
     "Should I ask for broader management experience, or look elsewhere?\r\n\r\n-- \r\nAnne\r\n"),
    ("tony@example.net", "b2@example.net", "b1@example.org", "Re: Should I ask for a broader role?",
     "> each time I achieve something with one team I am rotated\r\n\r\n"
     "How do you know they haven't already seen your potential? People who end up in\r\n"
     "senior roles have often worked in many departments.\r\n"),
    ("anne@example.org", "b3@example.org", "b2@example.net", "Re: Should I ask for a broader role?",
     "That is a good way to look at it. Thank you, Tony.\r\n"),
    ("mark@example.com", "b4@example.com", "b1@example.org", "Re: Should I ask for a broader role?",
     "Keep soaking up the experience, and tell your boss you want to manage.\r\n"),
]  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Sink, Path]]:
    tmp = tmp_path_factory.mktemp("browser")
    db = tmp / "b.db"
    picture = tmp / "tony.png"
    Image.radial_gradient("L").convert("RGB").save(picture)
    for args in (
        ("lists", "create", TEAM, "--name", "Managers' Forum", "--posting", "open",
         "--description", "Careers, teams and everything in between"),
        ("lists", "set", TEAM, "archive", "public"),
        ("lists", "set", TEAM, "badges", "unless-forged"),  # the posts here are not signed
        ("lists", "create", INNER, "--name", "Inner Circle", "--posting", "open"),
        ("members", "add", TEAM, "anne@example.org", "--name", "Anne Ambitious"),
        ("members", "add", TEAM, "tony@example.net", "--name", "BariTony"),
        ("members", "add", TEAM, "mark@example.com", "--name", "Mark Horstman"),
        ("members", "add", INNER, "anne@example.org", "--name", "Anne Ambitious"),
        ("badges", "grant", "tony@example.net", "Licensee Badge"),
        ("badges", "grant", "tony@example.net", "Training Badge"),
        ("badges", "grant", "mark@example.com", "Licensee Badge"),
        ("badges", "set", "Licensee Badge", "--colour", "#1a7f37", "--icon", "★"),
        ("badges", "set", "Training Badge", "--colour", "#8250df"),
        ("people", "set-picture", "tony@example.net", str(picture)),
    ):  # fmt: skip
        done = admin(db, *args)
        assert done.returncode == 0, (args, done.stderr)
    with RunningSink(Sink()) as sink:
        server = Server(db, "--relay", f"127.0.0.1:{sink.port}", "--http-port", "0")
        base = f"http://127.0.0.1:{server.http_port}"
        assert admin(db, "lists", "set", INNER, "web_url", base).returncode == 0
        try:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
                for n, (sender, mid, parent, subject, body) in enumerate(POSTS):
                    refs = (
                        f"In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n" if parent else ""
                    )
                    client.sendmail(sender, [TEAM], (
                        f"From: {sender}\r\nTo: {TEAM}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n"
                        f"Date: Tue, 01 Dec 2026 1{n}:00:00 +0000\r\n{refs}\r\n{body}"
                    ).encode())  # fmt: skip
                client.sendmail("anne@example.org", [INNER], (
                    f"From: anne@example.org\r\nTo: {INNER}\r\nSubject: Private plans\r\n"
                    "Message-ID: <p1@example.org>\r\n\r\nThe secret word is marmalade.\r\n"
                ).encode())  # fmt: skip
            sink.wait(lambda s: len(s.received) >= 5)
            yield server, sink, tmp
        finally:
            server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser: Any, width: int, height: int = 900) -> tuple[Any, list[str]]:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in {"error", "warning"} else None
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    return page, problems


def shot(page: Any, name: str, full: bool = True) -> None:
    """`full`: the whole page; else what the reader sees first (the window)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)


@pytest.mark.parametrize("width", [1280, 375], ids=["desktop", "phone"])
def test_a_thread_looks_like_a_forum_thread(
    site: tuple[Server, Sink, Path], browser: Any, width: int
) -> None:
    server, _, _ = site
    base = f"http://127.0.0.1:{server.http_port}"
    page, problems = open_page(browser, width)
    page.goto(f"{base}/")
    assert page.get_by_role("link", name="Managers' Forum").is_visible()
    shot(page, f"lists-{width}")
    page.get_by_role("link", name="Managers' Forum").click()
    page.wait_for_url(re.compile(r".*/lists/team@example.org/$"))
    shot(page, f"threads-{width}")
    page.get_by_role("link", name="Should I ask for a broader role?").first.click()
    page.wait_for_url(re.compile(r".*/thread/\d+$"))
    posts = page.locator("article.post")
    assert posts.count() == 4
    names = [posts.nth(i).locator(".name").inner_text() for i in range(4)]
    assert names == ["Anne Ambitious", "BariTony", "Anne Ambitious", "Mark Horstman"]
    tony = posts.nth(1)
    assert tony.locator(".badge").all_inner_texts() == ["★ Licensee Badge", "Training Badge"]
    assert tony.locator(".badge").first.is_visible()
    picture = tony.locator("img.avatar")
    assert picture.is_visible() and picture.evaluate("i => i.naturalWidth") == 128
    assert posts.nth(0).locator("svg.avatar").is_visible()  # drawn initials
    colour = tony.locator(".badge").first.evaluate("b => getComputedStyle(b).backgroundColor")
    assert colour == "rgb(26, 127, 55)"
    quote = tony.locator("details.quote")
    assert quote.is_visible() and not quote.locator("blockquote").is_visible()  # folded
    quote.locator("summary").click()
    assert quote.locator("blockquote").is_visible()
    assert "Submitted by BariTony" in tony.inner_text()
    overflow = page.evaluate("document.scrollingElement.scrollWidth")
    assert overflow <= width + 1, f"{overflow}px wide at {width}px"
    shot(page, f"thread-{width}")
    posts.nth(2).get_by_role("link", name="permalink").click()
    page.wait_for_url(re.compile(r".*/thread/\d+#m\d+$"))  # the permalink lands on the post
    target = page.locator("article.post:target")
    assert target.locator(".name").inner_text() == "Anne Ambitious"
    top = target.evaluate("a => a.getBoundingClientRect().top")
    assert 0 <= top < page.viewport_size["height"] - 40, top  # in view: landed on it
    shot(page, f"permalink-{width}", full=False)
    page.goto(f"{base}/lists/team@example.org/join")
    assert page.get_by_role("link", name="team-join@example.org").is_visible()
    shot(page, f"join-{width}")
    page.goto(f"{base}/signin")
    assert page.get_by_role("button", name="Mail me a link").is_visible()
    shot(page, f"signin-{width}")
    page.goto(f"{base}/lists/team@example.org/")
    page.get_by_label("Search this list").fill("departments")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r".*/search\?q=departments$"))
    assert page.locator("ol.hits mark").first.inner_text() == "departments"
    shot(page, f"search-{width}")
    assert problems == []


def test_a_private_list_is_refused_then_readable_after_the_emailed_link(
    site: tuple[Server, Sink, Path], browser: Any
) -> None:
    server, sink, _ = site
    base = f"http://127.0.0.1:{server.http_port}"
    page, problems = open_page(browser, 1280)
    response = page.goto(f"{base}/lists/inner@example.org/")
    assert response.status == 403 and "marmalade" not in page.content()
    problems.remove(
        "Failed to load resource: the server responded with a status of 403 (Forbidden)"
    )
    shot(page, "members-only-1280")
    page.get_by_role("link", name="sign in with the address you receive the list at").click()
    page.get_by_label("Email address").fill("anne@example.org")
    page.get_by_role("button", name="Mail me a link").click()
    assert page.get_by_text("a sign-in link is on its way").is_visible()
    shot(page, "signin-sent-1280")
    sink.wait(lambda s: any(b"sign-in link" in r.data for r in s.received))
    raw = next(r.data for r in sink.received if b"sign-in link" in r.data)
    notice = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(notice, EmailMessage)
    [link] = re.findall(rf"{re.escape(base)}/signin/\S+", notice.get_content())
    page.goto(link)
    page.get_by_role("button", name="Sign in as anne@example.org").click()
    page.wait_for_load_state()
    assert page.url == f"{base}/lists/inner@example.org/", (page.url, page.content()[:500])
    page.get_by_role("link", name="Private plans").click()
    assert "marmalade" in page.locator("article.post").inner_text()
    shot(page, "private-thread-1280")
    assert problems == []

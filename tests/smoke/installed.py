"""Smoke test of an installed maillist (run by installed.sh from a fresh venv, outside the checkout).

It uses the installed `maillist` command only: create a list, serve it on its embedded defaults
(SQLite file, Maildir outbox), post over SMTP, read the copy back with `mailbox` (the footer with
the author's badge must be there, so the templates were shipped), see the post in `maillist
threads`, and stop the server with SIGTERM (it must exit 0). Where PostgreSQL is installed, the
site then moves to a throwaway PostgreSQL cluster with `maillist db migrate` (the wheel's
PostgreSQL migrations) and reads the same there."""

from __future__ import annotations

import mailbox
import os
import re
import select
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from nxdns import nxdomain_resolver

TIMEOUT = 30.0


def main(work: Path) -> None:
    venv_bin = Path(sys.executable).parent
    maillist = str(venv_bin / "maillist")
    import maillist as package  # the installed one: nothing from a checkout is on sys.path

    where = Path(package.__file__).resolve()
    assert str(where).startswith(str(venv_bin.parent.resolve())), (
        f"not the installed package: {where}"
    )
    db = work / "var" / "smoke.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILLIST_")}

    def cli(*args: str) -> str:
        done = subprocess.run(
            [maillist, "--db", str(db), *args], capture_output=True, text=True, timeout=60, env=env
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    cli("lists", "create", "smoke@example.org", "--name", "Smoke")
    cli("members", "add", "smoke@example.org", "anne@example.org", "--name", "Anne Example")
    cli("members", "add", "smoke@example.org", "bob@example.net")
    cli("badges", "grant", "anne@example.org", "Licensee Badge")
    # Nothing signs this post (no DKIM here): badges for every post that is not a forgery.
    cli("lists", "set", "smoke@example.org", "badges", "unless-forged")
    cli("check")

    outbox = work / "var" / "outbox"
    server = subprocess.Popen(
        [
            maillist,
            "--db",
            str(db),
            "serve",
            "--port",
            "0",
            "--outbox",
            str(outbox),
            "--dns",
            f"127.0.0.1:{nxdomain_resolver()}",
        ],
        stdout=subprocess.PIPE,
        stderr=(work / "serve.log").open("wb"),
        env=env,
    )
    try:
        port = _port(server)
        with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as smtp:
            smtp.sendmail(
                "anne@example.org",
                ["smoke@example.org"],
                b"From: Anne Example <anne@example.org>\r\nTo: smoke@example.org\r\n"
                b"Subject: Installed and working\r\nMessage-ID: <smoke-1@example.org>\r\n"
                b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\nHello from a wheel.\r\n",
            )
        copies = _wait_for_copies(outbox, 2)
        for copy in copies:
            body = copy.get_payload(decode=True)
            assert isinstance(body, bytes), copy
            text = body.decode()
            assert "Hello from a wheel." in text, text
            assert "Anne Example - Licensee Badge" in text, text
            assert copy["List-Id"] == "Smoke <smoke.example.org>", copy["List-Id"]
            assert copy["Subject"] == "[Smoke] Installed and working", copy["Subject"]
        threads = cli("threads", "smoke@example.org")
        assert "Installed and working" in threads and "Licensee Badge" in threads, threads
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=TIMEOUT)
    assert code == 0, f"serve exited {code}: {(work / 'serve.log').read_text()[-2000:]}"
    _postgresql(work, cli, maillist, env, threads)
    people(work, cli, maillist, env)
    print(f"smoke: ok ({where.parent})")


def people(work: Path, cli: Callable[..., str], maillist: str, env: dict[str, str]) -> None:
    """What issue 21 asked of the installed package, as people use it: a moderator approves by
    a reply s-nail bottom-posts, a member with a full hour of notices still leaves, history
    imported with a "-0000" date keeps it, a public archive shows no address to an anonymous
    reader, search finds word forms, and `maillist --version` answers at once."""
    took = []
    for _ in range(5):
        begun = time.monotonic()
        subprocess.run([maillist, "--version"], check=True, capture_output=True, env=env)
        took.append(time.monotonic() - begun)
    assert sorted(took)[2] < 0.3, f"maillist --version took {sorted(took)[2]:.2f} s (median)"
    team = "team@example.org"
    cli("lists", "create", team, "--name", "Team")
    cli("lists", "set", team, "archive", "public")
    cli("members", "add", team, "anne@example.org", "--name", "Anne")
    cli("members", "add", team, "mo@example.org", "--role", "moderator")
    history = work / "history.mbox"
    history.write_bytes(
        b"From a@b Thu Jan  1 00:00:00 1970\nFrom: Old Timer <old@elsewhere.example>\n"
        b"To: team@example.org\nSubject: Rotated again\nMessage-ID: <old-1@elsewhere.example>\n"
        b"Date: Tue, 01 Oct 2019 10:00:00 -0000\n\nThey rotated me again; ask bob@example.net.\n"
    )
    cli("archive", "import", team, str(history))
    listed = cli("threads", team, "--json")
    assert '"date": "2019-10-01T10:00:00' in listed, listed
    assert "old-1@elsewhere.example" in cli("search", team, "rotate")  # the word form "rotated"
    outbox = work / "var" / "team-outbox"
    http_port = _free_port()
    cli("lists", "set", team, "web_url", f"http://127.0.0.1:{http_port}")
    server = subprocess.Popen(
        [maillist, "--db", str(work / "var" / "smoke.db"), "serve", "--port", "0",
         "--http-port", str(http_port), "--outbox", str(outbox),
         "--dns", f"127.0.0.1:{nxdomain_resolver()}"],
        stdout=subprocess.PIPE, stderr=(work / "people.log").open("wb"), env=env,
    )  # fmt: skip
    try:
        port = _port(server)
        _public_archive_shows_no_address(http_port, team)
        _moderator_approves_with_s_nail(port, outbox, team)
        _a_member_with_a_full_hour_leaves(port, outbox, team, cli)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=TIMEOUT)


def _public_archive_shows_no_address(http_port: int, team: str) -> None:
    base = f"http://127.0.0.1:{http_port}/lists/{team}/"
    listing = urllib.request.urlopen(base, timeout=TIMEOUT).read().decode()
    [thread] = re.findall(rf'href="(/lists/{team}/thread/\d+)"', listing)
    for path in (f"/lists/{team}/", thread, f"{thread}.mbox", f"{thread}.atom",
                 f"/lists/{team}/feed.atom", f"/lists/{team}/msg/old-1@elsewhere.example/raw"):  # fmt: skip
        text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}{path}", timeout=TIMEOUT)
        found = set(re.findall(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", text.read().decode()))
        shown = {a for a in found if not a.startswith("team") and "old-1@" not in a}
        assert not shown, (path, shown)


def _notices(outbox: Path, to: str) -> list[mailbox.MaildirMessage]:
    if not (outbox / "new").is_dir():
        return []
    return [m for m in mailbox.Maildir(str(outbox), create=False) if m["Delivered-To"] == to]


def _wait(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _moderator_approves_with_s_nail(port: int, outbox: Path, team: str) -> None:
    if not shutil.which("s-nail"):
        print("smoke: s-nail not installed: its moderation reply was not tried")
        return
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as smtp:
        smtp.sendmail("zed@else.example", [team], (
            f"From: zed@else.example\r\nTo: {team}\r\nSubject: May I?\r\n"
            "Message-ID: <held-1@else.example>\r\n\r\nA stranger's post.\r\n").encode())  # fmt: skip
    _wait(lambda: bool(_notices(outbox, "mo@example.org")), "the moderator's notice")
    [notice] = _notices(outbox, "mo@example.org")
    box = outbox.parent / "mo-inbox"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True, exist_ok=True)
    (box / "new" / "1.notice").write_bytes(notice.as_bytes())
    subprocess.run(
        ["s-nail", "-#", "-N", "-S", "quote", "-S", "from=mo@example.org",
         "-S", f"mta=smtp://127.0.0.1:{port}", "-f", str(box)],
        input=b"reply 1\napprove\n~.\n", check=True, timeout=60, capture_output=True,
    )  # fmt: skip
    _wait(lambda: any(m["Message-ID"] == "<held-1@else.example>"
                      for m in _notices(outbox, "anne@example.org")), "the approved post")  # fmt: skip


def _a_member_with_a_full_hour_leaves(
    port: int, outbox: Path, team: str, cli: Callable[..., str]
) -> None:
    request = team.replace("@", "-request@")
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as smtp:
        for n in range(6):
            smtp.sendmail("anne@example.org", [request], (
                f"From: anne@example.org\r\nTo: {request}\r\nSubject: info\r\n"
                f"Message-ID: <info-{n}@example.org>\r\n\r\ninfo\r\n").encode())  # fmt: skip
        leave = team.replace("@", "-leave@")
        smtp.sendmail("anne@example.org", [leave], (
            f"From: anne@example.org\r\nTo: {leave}\r\nSubject: bye\r\n"
            "Message-ID: <leave-1@example.org>\r\n\r\nbye\r\n").encode())  # fmt: skip

    def confirmation() -> mailbox.MaildirMessage | None:
        return next((m for m in _notices(outbox, "anne@example.org")
                     if "leaving" in str(m["Subject"])), None)  # fmt: skip

    _wait(lambda: confirmation() is not None, "the leave confirmation")
    found = confirmation()
    assert found is not None
    confirm = re.sub(r".*<|>.*", "", str(found["Reply-To"]))
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as smtp:
        smtp.sendmail("anne@example.org", [confirm], (
            f"From: anne@example.org\r\nTo: {confirm}\r\nSubject: Re: leaving\r\n"
            "Message-ID: <yes-1@example.org>\r\n\r\nyes\r\n").encode())  # fmt: skip
    _wait(lambda: "anne@example.org" not in cli("members", "list", team), "anne to leave")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgresql(
    work: Path, cli: Callable[..., str], maillist: str, env: dict[str, str], threads: str
) -> None:
    from pgserver import PgCluster, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        print(f"smoke: PostgreSQL part skipped: {reason}")
        return
    cluster = PgCluster.start(work / "pg")
    try:
        url = cluster.new_database()
        cli("db", "migrate", "--to", url)
        cli("db", "check", "--to", url)
        done = subprocess.run(
            [maillist, "--db", url, "threads", "smoke@example.org"],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert done.returncode == 0 and done.stdout == threads, (done.stdout, done.stderr)
    finally:
        cluster.stop()


def _port(server: subprocess.Popen[bytes]) -> int:
    assert server.stdout is not None
    fd = server.stdout.fileno()
    deadline = time.monotonic() + TIMEOUT
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            seen += chunk
            match = re.search(rb"SMTP server listening on [\d.]+:(\d+)", seen)
            if match:
                return int(match.group(1))
        elif server.poll() is not None:
            break
    raise AssertionError(f"server did not start: {seen!r}")


def _wait_for_copies(outbox: Path, count: int) -> list[mailbox.MaildirMessage]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if (outbox / "new").is_dir():
            box = mailbox.Maildir(str(outbox), create=False)
            found = list(box)
            if len(found) >= count:
                return found
        time.sleep(0.1)
    raise AssertionError(f"expected {count} copies in {outbox}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

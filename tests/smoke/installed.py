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
import signal
import smtplib
import subprocess
import sys
import time
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
    print(f"smoke: ok ({where.parent})")


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

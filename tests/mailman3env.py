"""GNU Mailman 3 from PyPI for the import tests: a venv of its own (`make mailman3` builds it;
$MAILLIST_TEST_MAILMAN3 names another), started with its SQLite default in a temporary directory
on loopback ports, filled through its REST API, stopped by its master's PID. Its package also
carries Mailman 2.1 config.pck files as test data."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from serverutil import wait_for
from sink import free_port

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("MAILLIST_TEST_MAILMAN3", ROOT / ".cache" / "mailman3"))
USER, PASSWORD = "restadmin", "rest-Secret-9"
START_TIMEOUT = 120.0  # about 13 processes import Mailman at once: 7-25 s on 2 cores


def missing() -> str:
    """Why Mailman 3 cannot be used here, or "" when it can."""
    if not (VENV / "bin" / "mailman").exists():
        return f"Mailman 3 is not installed in {VENV} (make mailman3: pip install mailman)"
    return ""


def pck_files() -> dict[str, Path]:
    """Mailman's own Mailman 2.1 config.pck test files, by name."""
    return {p.name: p for p in VENV.glob("lib/python3*/site-packages/mailman/testing/*.pck")}


class Mailman:
    """A running Mailman 3 core: REST at `self.url`, LMTP at `self.lmtp_port`."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.var = home / "var"
        self.rest_port, self.lmtp_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.rest_port}"
        self.config = home / "mailman.cfg"
        (home / "gunicorn.cfg").write_text(
            "[gunicorn]\ngraceful_timeout = 10\ntimeout = 360\ncontrol_socket_disable = true\n"
        )
        self.config.write_text(
            "[mailman]\nlayout: mm3\nsite_owner: postmaster@example.org\n\n"
            f"[paths.mm3]\nvar_dir: {self.var}\n\n"
            "[database]\nurl: sqlite:///$DATA_DIR/mailman.db\n\n"
            f"[webservice]\nhostname: 127.0.0.1\nport: {self.rest_port}\nadmin_user: {USER}\n"
            f"admin_pass: {PASSWORD}\napi_version: 3.1\nworkers: 1\n"
            f"configuration: {home / 'gunicorn.cfg'}\n\n"
            "[mta]\nincoming: mailman.mta.null.NullMTA\noutgoing: mailman.mta.deliver.deliver\n"
            f"smtp_host: 127.0.0.1\nsmtp_port: {free_port()}\n"  # nothing listens: mail stays
            f"lmtp_host: 127.0.0.1\nlmtp_port: {self.lmtp_port}\n\n"
            "[archiver.prototype]\nenable: no\n[archiver.mhonarc]\nenable: no\n"
            "[archiver.mail_archive]\nenable: no\n"
        )
        self.pid = 0

    def command(self, *args: str) -> None:
        root = ["--run-as-root"] if os.geteuid() == 0 else []
        with (self.home / "mailman-cli.log").open("ab") as log:  # `start` keeps its stdout open
            subprocess.run(
                [str(VENV / "bin" / "mailman"), "-C", str(self.config), *root, *args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=120, check=True,
                env={**os.environ, "HOME": str(self.home)},
            )  # fmt: skip

    def start(self) -> None:
        self.command("start")
        pid_file = self.var / "master.pid"
        wait_for(pid_file.exists, "Mailman's master.pid", START_TIMEOUT)
        self.pid = int(pid_file.read_text().strip())
        wait_for(self._answers, "Mailman's REST API", START_TIMEOUT)
        wait_for(self._lmtp, "Mailman's LMTP runner", START_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM to the master (what `mailman stop` sends), then its process group is gone;
        SIGKILL to that group only if it is not within the timeout."""
        if not self.pid:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
            wait_for(lambda: not _group(self.pid), "Mailman's processes to end", 60)
        except ProcessLookupError:
            pass
        except AssertionError:
            os.killpg(self.pid, signal.SIGKILL)
            raise

    def _answers(self) -> bool:
        try:
            self.call("GET", "system/versions")
        except (OSError, urllib.error.URLError):
            return False
        return True

    def _lmtp(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.lmtp_port), timeout=2).close()
        except OSError:
            return False
        return True

    def call(self, method: str, path: str, data: dict[str, Any] | None = None) -> Any:
        """One REST request (form-encoded, as Postorius sends them); the JSON answer or None."""
        body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        target = path if path.startswith("http") else f"{self.url}/3.1/{path}"
        request = urllib.request.Request(
            target, data=body, method=method, headers={"Authorization": f"Basic {token}"}
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            raw = answer.read()
            location = answer.headers.get("Location")
        return json.loads(raw) if raw else location


def _group(pgid: int) -> list[int]:
    """Live processes in the process group `pgid` (Mailman's master calls setsid)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found

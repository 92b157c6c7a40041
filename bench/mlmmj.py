"""Shared fan-out against mlmmj in the same run: one post to a list of --members, mlmmj (Debian's
package, its best setting: VERP through the relay, 500 recipients a transaction) and maillist
(`serve --relay`, DKIM-signed and ARC-sealed unless --unsigned), each into Postfix's smtp-sink on
loopback. Prints recipients/s per run and the medians, and maillist's ratio to mlmmj.

    python bench/mlmmj.py --members 10000 --runs 3 [--unsigned]

Installs Debian's mlmmj and postfix (smtp-sink) when they are missing and this runs as root.
mlmmj's time runs from `mlmmj-receive` to the last transaction smtp-sink counts (its -c counter:
mlmmj sends its processes into the background, so the sink says when it is done)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fanout import SmtpSink, fanout_run, free_port, make_db
from ingest import apt_install, ensure_postfix_tools

PER_TRANSACTION = 500  # mlmmj's control/maxverprecips: its fastest setting here
POST = (
    b"From: poster@example.org\r\nTo: bench@example.org\r\nSubject: fan-out\r\n"
    b"Message-ID: <mlmmj-bench@bench.example>\r\n\r\n" + b"Body line of a post.\r\n" * 40
)


def ensure_mlmmj() -> None:
    if not Path("/usr/bin/mlmmj-receive").exists():  # mlmmj wants its binaries by full path
        apt_install("mlmmj", "Debian's mlmmj")


class CountingSink:
    """smtp-sink with its -c counter read as it goes: how many messages it has taken."""

    def __init__(self) -> None:
        self.port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            ["smtp-sink", *user, "-c", f"127.0.0.1:{self.port}", "1024"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.messages = 0
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        word = b""
        while chunk := os.read(fd, 4096):
            for byte in chunk:
                if byte in b" \r\n":
                    if word.startswith(b"mesg="):
                        with self.changed:
                            self.messages = int(word[5:])
                            self.changed.notify_all()
                    word = b""
                else:
                    word += bytes([byte])

    def wait(self, messages: int, timeout: float) -> float:
        """Seconds until the sink has taken `messages` in all (SystemExit past `timeout`)."""
        with self.changed:
            if not self.changed.wait_for(lambda: self.messages >= messages, timeout):
                raise SystemExit(f"smtp-sink took {self.messages} of {messages} messages")
        return time.perf_counter()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def mlmmj_list(spool: Path, members: int, port: int) -> Path:
    """A list made by mlmmj-make-ml (its questions answered on stdin), its subscribers written
    where mlmmj-sub writes them, and its relay and VERP settings."""
    subprocess.run(
        ["/usr/bin/mlmmj-make-ml", "-s", str(spool), "-L", "bench"],
        input=b"example.org\npostmaster@example.org\nen\nn\n", check=True, capture_output=True,
        timeout=60,
    )  # fmt: skip
    listdir = spool / "bench"
    with (listdir / "subscribers.d" / "m").open("w") as out:
        for i in range(members):
            out.write(f"member{i}@domain{i % 50}.example\n")
    control = listdir / "control"
    (control / "relayhost").write_text("127.0.0.1\n")
    (control / "smtpport").write_text(f"{port}\n")
    (control / "verp").write_text("postfix\n")
    (control / "maxverprecips").write_text(f"{PER_TRANSACTION}\n")
    return listdir


def mlmmj_run(tmp: Path, members: int, tag: str) -> float:
    """Recipients/s of one post through mlmmj into a counting smtp-sink."""
    sink = CountingSink()
    try:
        listdir = mlmmj_list(tmp / f"spool-{tag}", members, sink.port)
        expected = -(-members // PER_TRANSACTION)
        start = time.perf_counter()
        subprocess.run(
            ["/usr/bin/mlmmj-receive", "-F", "-s", "poster@example.org", "-L", str(listdir)],
            input=POST, check=True, timeout=60,
        )  # fmt: skip
        end = sink.wait(expected, 600)
        return members / (end - start)
    finally:
        sink.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--unsigned", action="store_true", help="maillist without a DKIM key")
    args = parser.parse_args()
    ensure_postfix_tools()
    ensure_mlmmj()
    ours: list[float] = []
    theirs: list[float] = []
    sink = SmtpSink()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            for n in range(args.runs):
                theirs.append(mlmmj_run(tmp, args.members, f"m{n}"))
                db = make_db(tmp, f"s{n}", args.members, dkim=not args.unsigned)
                ours.append(fanout_run(db, tmp, sink, 1, args.members, f"s{n}")["rate"])
                print(
                    f"  run {n + 1}: mlmmj {theirs[-1]:,.0f} recipients/s | maillist "
                    f"{ours[-1]:,.0f} recipients/s",
                    flush=True,
                )
    finally:
        sink.stop()
    mine, mlmmj = statistics.median(ours), statistics.median(theirs)
    how = "unsigned" if args.unsigned else "DKIM-signed and ARC-sealed"
    print(
        f"1 post x {args.members:,} members: maillist ({how}) {mine:,.0f} recipients/s, mlmmj "
        f"({PER_TRANSACTION} recipients a transaction) {mlmmj:,.0f}: {mine / mlmmj:.1f}x "
        f"(median of {args.runs})",
        flush=True,
    )


if __name__ == "__main__":
    main()

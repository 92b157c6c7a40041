"""How many of flufl.bounce's own sample bounces maillist understands, end to end.

Fetches the flufl.bounce sdist (pip download, from the package index; cached) for its
`tests/data/*.txt` samples and the table in `tests/test_detectors.py` of which addresses each
sample names. Every address in that table becomes a member of corpus@example.org; every sample
is sent over SMTP (null reverse-path) to corpus-bounces@example.org on a real `maillist serve`;
then each stored bounce is compared with the table: matched to the expected member, matched to
some member, or matching nobody. Prints the counts and the misses.

    .venv-dev/bin/python bench/bounce_corpus.py
"""

from __future__ import annotations

import argparse
import ast
import smtplib
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import Proc  # also points every server at a loopback resolver

LIST = "corpus@example.org"
BOUNCES = "corpus-bounces@example.org"


def fetch(cache: Path) -> Path:
    """The unpacked flufl.bounce sdist of the installed version."""
    wanted = version("flufl.bounce")
    root = cache / f"flufl_bounce-{wanted}"
    if not (root / "tests" / "data").is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             "-d", str(cache), f"flufl.bounce=={wanted}"],
            check=True, timeout=300,
        )  # fmt: skip
        [archive] = cache.glob(f"flufl_bounce-{wanted}.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(cache, filter="data")
    return root


def table(root: Path) -> list[tuple[str, list[str], bool]]:
    """(sample file, addresses flufl.bounce's own tests expect, temporary) from DETECTORS."""
    tree = ast.parse((root / "tests" / "test_detectors.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "DETECTORS" for t in node.targets
        ):
            rows = ast.literal_eval(node.value)
            return [
                (name, [a.decode().lower() for a in addresses], temporary)
                for _, name, addresses, temporary in rows
            ]
    raise SystemExit("no DETECTORS table in flufl.bounce's tests")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "maillist-corpus"
    )
    args = parser.parse_args()
    root = fetch(args.cache)
    samples = table(root)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "corpus.db"
        cli = [sys.executable, "-m", "maillist", "--db", str(db)]
        subprocess.run([*cli, "lists", "create", LIST], check=True, capture_output=True, timeout=60)
        members = sorted({a for _, addresses, _ in samples for a in addresses})
        roster = Path(tmp) / "members.csv"
        roster.write_text("address\n" + "".join(f"{a}\n" for a in members))
        imported = subprocess.run(
            [*cli, "members", "import", LIST, str(roster)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        print(f"members: {len(members)} addresses from the table; import said: "
              f"{(imported.stdout + imported.stderr).strip().splitlines()[-1]}")  # fmt: skip
        server = Proc([*cli, "serve", "--port", "0", "--outbox", str(Path(tmp) / "out")],
                      Path(tmp) / "serve.log")  # fmt: skip
        results: list[tuple[str, list[str], str, str, bool]] = []
        try:
            conn = sqlite3.connect(db, timeout=10)
            with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
                for name, expected, temporary in samples:
                    data = (root / "tests" / "data" / name).read_bytes()
                    # Stored as mbox entries with LF endings; an MTA hands over no "From " line,
                    # and CRLF endings.
                    if data.startswith(b"From "):
                        data = data.split(b"\n", 1)[1]
                    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                    try:
                        client.sendmail("", [BOUNCES], data)
                    except smtplib.SMTPException as exc:
                        results.append((name, expected, "refused", str(exc)[:80], temporary))
                        client.rset()
                        continue
                    row = conn.execute(
                        "SELECT member, kind FROM bounces ORDER BY id DESC LIMIT 1"
                    ).fetchone()
                    member, kind = (row[0], row[1]) if row else ("", "")
                    results.append((name, expected, member, kind, temporary))
            conn.close()
        finally:
            server.stop()
    expected_hit = [r for r in results if r[2] and r[2] in r[1]]
    none_expected = [r for r in results if not r[1]]
    missed = [r for r in results if r[1] and r[2] not in r[1]]
    print(
        f"samples: {len(results)} ({len(none_expected)} for which flufl.bounce expects no address)"
    )
    print(f"matched to the expected member: {len(expected_hit)} of "
          f"{len(results) - len(none_expected)}")  # fmt: skip
    kinds: dict[str, int] = {}
    for r in results:
        kinds[r[3]] = kinds.get(r[3], 0) + 1
    print("kinds: " + ", ".join(f"{k or 'none'}={n}" for k, n in sorted(kinds.items())))
    scored = [r for r in expected_hit if r[3] in {"hard", "soft"}]
    agree = [r for r in scored if (r[3] == "soft") == r[4]]
    print(f"hard/soft as flufl.bounce's table says: {len(agree)} of {len(scored)}")
    for name, expected, member, kind, _ in missed:
        print(f"  missed {name}: expected {' '.join(expected)}, got {member or '-'} ({kind})")
    for name, _, _, kind, temporary in (r for r in scored if r not in agree):
        print(f"  {name}: {kind}, the table says {'temporary' if temporary else 'permanent'}")


if __name__ == "__main__":
    main()

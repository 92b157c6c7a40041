"""What an admin types and reads: values that would mislead members, spreadsheets or terminals."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from conftest import CliFn, assert_one_line_error
from maillist.cli.output import printable
from maillist.errors import BadInput
from maillist.people.memberfile import guard, read_rows, unguard


@pytest.fixture
def team(run_cli: CliFn) -> CliFn:
    assert run_cli("lists", "create", "team@example.org", "--name", "Team").code == 0
    return run_cli


# --- no mode that the server does not honour -----------------------------------------------------


def test_digest_mode_is_accepted_everywhere_and_a_bad_mode_refused(
    team: CliFn, tmp_path: Path
) -> None:
    assert team("members", "add", "team@example.org", "a@example.org", "--mode", "digest").code == 0
    assert team("members", "add", "team@example.org", "d@example.org").code == 0
    assert team("members", "set", "team@example.org", "d@example.org", "mode", "digest").code == 0
    assert_one_line_error(
        team("members", "set", "team@example.org", "d@example.org", "mode", "weekly"),
        "bad value 'weekly' for mode",
    )
    rows = tmp_path / "m.csv"
    rows.write_text("address,mode\nb@example.org,digest\nc@example.org,nomail\n")
    assert team("members", "import", "team@example.org", str(rows)).code == 0
    modes = {
        m["address"]: m["mode"]
        for m in json.loads(team("members", "list", "team@example.org", "--json").out)
    }
    assert modes == {
        "a@example.org": "digest", "b@example.org": "digest", "c@example.org": "nomail",
        "d@example.org": "digest",
    }  # fmt: skip


# --- CSV injection (OWASP) -------------------------------------------------------------------------


def test_export_neutralises_formulas_and_import_reads_them_back(
    team: CliFn, tmp_path: Path
) -> None:
    add = ("members", "add", "--name")
    assert team(*add, '=HYPERLINK("x")', "--", "team@example.org", "-sum@example.org").code == 0
    assert team(*add, "@SUM(A1)", "--", "team@example.org", "+1@example.org").code == 0
    exported = team("members", "export", "team@example.org")
    rows = list(csv.reader(io.StringIO(exported.out)))
    cells = [cell for row in rows[1:] for cell in row]
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells), cells
    assert ["'-sum@example.org", '\'=HYPERLINK("x")'] in [row[:2] for row in rows]
    path = tmp_path / "team.csv"
    path.write_text(exported.out)
    assert team("lists", "create", "copy@example.org").code == 0
    assert team("members", "import", "copy@example.org", str(path)).code == 0
    original = json.loads(team("members", "list", "team@example.org", "--json").out)
    copied = json.loads(team("members", "list", "copy@example.org", "--json").out)
    assert original == copied


@pytest.mark.parametrize("cell", ["=1+1", "+x", "-x", "@x", "\tx", "\rx", "plain", "'quoted", ""])
def test_guard_round_trips(cell: str) -> None:
    assert unguard(guard(cell)) == cell
    assert not guard(cell).startswith(("=", "+", "-", "@", "\t", "\r"))


# --- values that end up in headers ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://lists.example.org>, <mailto:evil@example.net",
        "https://a.example,https://b.example",
        "https://example.org/a b",
        'https://example.org/"x"',
        "javascript:alert(1)",
        "https://example.org/<x>",
    ],
)
def test_web_url_must_be_a_plain_url(team: CliFn, url: str) -> None:
    assert_one_line_error(team("lists", "set", "team@example.org", "web_url", url), "web_url")


def test_web_url_accepts_plain_urls(team: CliFn) -> None:
    for url in (
        "https://lists.example.org",
        "http://127.0.0.1:8080/archive",
        "https://x.example/~a/b-c_d",
    ):
        assert team("lists", "set", "team@example.org", "web_url", url).code == 0


def test_badge_names_have_no_commas(team: CliFn) -> None:
    assert team("members", "add", "team@example.org", "a@example.org").code == 0
    assert_one_line_error(team("badges", "grant", "a@example.org", "Licensee, CEO"), "comma")


# --- what the admin reads ------------------------------------------------------------------------


def test_lists_set_help_keeps_brackets(run_cli: CliFn) -> None:
    out = run_cli("lists", "set", "--help").out
    assert "e.g. [team]" in " ".join(out.split())


def test_printable_escapes_what_a_terminal_would_obey() -> None:
    assert printable("a\x1b[31mred\x07\x00") == "a\\x1b[31mred\\x07\\x00"
    assert printable("x\u202ey\x9bz") == "x\\u202ey\\x9bz"
    assert printable("Zoë ☃") == "Zoë ☃"


def test_import_reads_stdin(cli: CliFn) -> None:
    assert cli("lists", "create", "team@example.org").code == 0
    added = cli("members", "import", "team@example.org", "-", stdin="address,name\nzoe@x.org,Zoe\n")
    assert added.code == 0 and "added 1" in added.out, added.err
    assert "zoe@x.org" in cli("members", "list", "team@example.org").out


def test_an_unreadable_file_error_says_how_to_import_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", denied)  # tests run as root, who can read any file
    with pytest.raises(BadInput, match=r"permission denied .*members import LIST - < FILE"):
        read_rows(tmp_path / "people.csv")

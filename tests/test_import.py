"""`members import`: good rows added, bad rows reported by line, --strict all-or-nothing, bad files refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import CliFn, assert_one_line_error, dump
from maillist.db import Store
from maillist.models import ImportRow
from maillist.services import lists, members


@pytest.fixture
def team(run_cli: CliFn) -> CliFn:
    assert run_cli("lists", "create", "team@example.org").code == 0
    assert run_cli("members", "add", "team@example.org", "old@example.org").code == 0
    return run_cli


def write(tmp_path: Path, text: str, name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def listed(run_cli: CliFn) -> dict[str, dict[str, object]]:
    return {
        m["address"]: m
        for m in json.loads(run_cli("members", "list", "team@example.org", "--json").out)
    }


def test_good_bad_and_existing_rows(team: CliFn, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "address,name,role\n"
        "anne@Example.ORG,Anne,owner\n"  # line 2
        "not-an-address,Bad,member\n"  # line 3
        "OLD@example.org,,\n"  # line 4: already a member (case-insensitive)
        "\n"  # line 5: blank, skipped
        "carl@example.net,Carl,boss\n"  # line 6: bad role
        'dora@example.net,"Reyes, Dora",moderator\n'  # line 7
        "anne@example.org,Anne again,\n",  # line 8: repeats line 2
    )
    result = team("members", "import", "team@example.org", str(path))
    assert result.code == 0
    assert "added 2, already members 1, invalid 3" in result.out
    assert "line 3: invalid address 'not-an-address'" in result.err
    assert "line 6: unknown role 'boss'" in result.err
    assert "line 8: anne@example.org repeats line 2" in result.err
    found = listed(team)
    assert set(found) == {"anne@example.org", "dora@example.net", "old@example.org"}
    assert found["anne@example.org"]["role"] == "owner"
    assert found["dora@example.net"]["name"] == "Reyes, Dora"


def test_strict_adds_nothing_when_a_row_is_bad(team: CliFn, tmp_path: Path, db_path: Path) -> None:
    path = write(tmp_path, "address\nanne@example.org\nbad@\nbob@example.org\n")
    before = dump(db_path)
    result = team("members", "import", "team@example.org", str(path), "--strict")
    assert result.code == 1
    assert "line 3: invalid address 'bad@'" in result.err
    assert "nothing imported" in result.err
    assert dump(db_path) == before


def test_strict_with_clean_file_imports(team: CliFn, tmp_path: Path) -> None:
    path = write(tmp_path, "address\nanne@example.org\nbob@example.org\n")
    result = team("members", "import", "team@example.org", str(path), "--strict")
    assert result.code == 0 and "added 2" in result.out


def test_byte_order_mark_and_column_order(team: CliFn, tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffName,Mode,Address\nZoë,nomail,zoe@example.org\n".encode())
    result = team("members", "import", "team@example.org", str(path))
    assert result.code == 0, result.err
    assert listed(team)["zoe@example.org"] | {} == {
        "address": "zoe@example.org",
        "name": "Zoë",
        "role": "member",
        "mode": "nomail",
        "status": "enabled",
        "disabled_reason": "",
        "bounce_score": 0.0,
        "badges": [],
    }


def test_unknown_columns_warn(team: CliFn, tmp_path: Path) -> None:
    path = write(tmp_path, "address,shoe_size\nanne@example.org,44\n")
    result = team("members", "import", "team@example.org", str(path))
    assert result.code == 0
    assert "ignoring unknown column(s): shoe_size" in result.err


BAD_FILES = [
    ("", "is empty"),
    ("name,role\nAnne,member\n", "no 'address' column"),
    ('address,name\n"anne@example.org,Anne\n', "malformed CSV at line"),
    ("address\n" + "x" * 200_000 + "\n", "field larger than field limit"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_unusable_files(
    team: CliFn, tmp_path: Path, db_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    before = dump(db_path)
    assert_one_line_error(team("members", "import", "team@example.org", str(path)), message)
    assert dump(db_path) == before


def test_not_utf8_missing_and_directory(team: CliFn, tmp_path: Path, db_path: Path) -> None:
    latin = tmp_path / "latin1.csv"
    latin.write_bytes("address,name\nz@example.org,Zo\xeb\n".encode("latin-1"))
    before = dump(db_path)
    assert_one_line_error(team("members", "import", "team@example.org", str(latin)), "not UTF-8")
    assert_one_line_error(
        team("members", "import", "team@example.org", str(tmp_path / "nope.csv")), "no such file"
    )
    assert_one_line_error(team("members", "import", "team@example.org", str(tmp_path)), "directory")
    assert dump(db_path) == before


def test_unknown_list(team: CliFn, tmp_path: Path) -> None:
    path = write(tmp_path, "address\nanne@example.org\n")
    assert_one_line_error(team("members", "import", "ghost@example.org", str(path)), "no such list")


async def test_large_import_uses_worker_pool_and_reports_lines(db: Store) -> None:
    """Past the parallel threshold the rows are validated in a process pool: same results, same lines."""
    await lists.create(db, "big@example.org", actor="test")
    rows = [ImportRow(line=i + 2, address=f"user{i}@example{i % 7}.org") for i in range(25_000)]
    rows[123] = ImportRow(line=125, address="broken@@example.org")
    rows[20_000] = ImportRow(line=20_002, address="user5@example5.org")  # repeats line 7
    progressed: list[int] = []
    report = await members.import_rows(
        db, "big@example.org", rows, actor="test", progress=progressed.append
    )
    assert report.added == 24_998 and report.already == 0
    assert [(p.line, p.reason.split(":")[0]) for p in report.invalid] == [
        (125, "invalid address 'broken@@example.org'"),
        (20_002, "user5@example5.org repeats line 7"),
    ]
    assert sum(progressed) == 25_000 + 24_998
    assert len(await members.members(db, "big@example.org")) == 24_998
    again = await members.import_rows(db, "big@example.org", rows, actor="test")
    assert (again.added, again.already, len(again.invalid)) == (0, 24_998, 2)

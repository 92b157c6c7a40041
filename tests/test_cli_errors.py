"""Every bad input gets a non-zero exit, one `error:` line on stderr, and leaves the database as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

import dbutil
from conftest import CliFn, assert_one_line_error, dump


@pytest.fixture
def seeded(run_cli: CliFn) -> CliFn:
    assert run_cli("lists", "create", "team@example.org").code == 0
    assert run_cli("members", "add", "team@example.org", "anne@example.org").code == 0
    assert run_cli("badges", "grant", "anne@example.org", "Licensee Badge").code == 0
    return run_cli


CASES = [
    (("lists", "create", "team@example.org"), "list already exists: team@example.org"),
    (("lists", "create", "TEAM@EXAMPLE.ORG"), "list already exists"),
    (("lists", "create", "no-at-sign"), "invalid address"),
    (("lists", "create", "team-request@example.org"), "-request"),
    (("lists", "create", "a+b@example.org"), "'+' is reserved"),
    (("lists", "create", "x@example.org", "--name", ""), "must not be empty"),
    (("lists", "show", "ghost@example.org"), "no such list: ghost@example.org"),
    (("lists", "set", "ghost@example.org", "posting", "open"), "no such list"),
    (("lists", "set", "team@example.org", "posting", "sometimes"), "members, open, moderated"),
    (("lists", "set", "team@example.org", "colour", "red"), "unknown list option 'colour'"),
    (("lists", "set", "team@example.org", "max_message_size", "huge"), "max_message_size"),
    (("lists", "set", "team@example.org", "max_message_size", "500M"), "between"),
    (("lists", "set", "team@example.org", "personalize", "maybe"), "yes or no"),
    (("lists", "set", "team@example.org", "reply_to", "nobody"), "author"),
    (("lists", "set", "team@example.org", "web_url", "ftp://x"), "http"),
    (("lists", "set", "team@example.org", "subject_prefix", "[a]\r\nBcc: x@y.org"), "one line"),
    (("lists", "delete", "team@example.org"), "without --yes"),
    (("lists", "delete", "ghost@example.org", "--yes"), "no such list"),
    (("members", "add", "ghost@example.org", "b@example.org"), "no such list"),
    (("members", "add", "team@example.org", "b@example.org", "bad@"), "invalid address 'bad@'"),
    (
        ("members", "add", "team@example.org", "b@example.org", "ANNE@EXAMPLE.ORG"),
        "already a member",
    ),
    (("members", "add", "team@example.org", "a\nb@example.org"), "control characters"),
    (("members", "add", "team@example.org", "b@example.org", "--name", "x\ny"), "one line"),
    (("members", "remove", "team@example.org", "nobody@example.org"), "not a member"),
    (("members", "remove", "team@example.org", "anne@example.org", "zed@x.org"), "zed@x.org"),
    (("members", "list", "ghost@example.org"), "no such list"),
    (("members", "export", "ghost@example.org"), "no such list"),
    (("badges", "grant", "nobody@example.org", "X"), "no such person: nobody@example.org"),
    (("badges", "grant", "anne@example.org", "licensee badge"), "already has"),
    (("badges", "grant", "anne@example.org", "   "), "must not be empty"),
    (("badges", "grant", "anne@example.org", "B" * 65), "at most 64"),
    (("badges", "grant", "not-an-address", "X"), "invalid address"),
    (("badges", "revoke", "anne@example.org", "Training Badge"), "does not have"),
    (("badges", "list", "nobody@example.org"), "no such person"),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input(seeded: CliFn, db_path: Path, args: tuple[str, ...], message: str) -> None:
    before = dump(db_path)
    result = seeded(*args)
    assert_one_line_error(result, message)
    assert result.code == 1
    assert dump(db_path) == before


@dbutil.sqlite_only
def test_file_that_is_not_a_database(run_cli: CliFn, db_path: Path) -> None:
    db_path.write_bytes(b"this is not an SQLite database at all" * 200)
    assert_one_line_error(run_cli("lists", "list"), "cannot use database", str(db_path))


def test_database_newer_than_code(run_cli: CliFn, db_path: Path) -> None:
    assert run_cli("lists", "create", "team@example.org").code == 0
    conn = dbutil.connect(db_path)
    if dbutil.POSTGRES:
        conn.execute("UPDATE maillist_schema SET version = 999")
    else:
        conn.execute("PRAGMA user_version = 999")
    conn.close()
    assert_one_line_error(run_cli("lists", "list"), "newer than this maillist supports")


@pytest.mark.parametrize(
    "args",
    [
        ("status",), ("check",), ("lists", "list"), ("lists", "show", "team@example.org"),
        ("members", "list", "team@example.org"), ("members", "export", "team@example.org"),
        ("members", "add", "team@example.org", "anne@example.org"), ("threads", "team@example.org"),
        ("messages", "show", "x@example.org"), ("queue",), ("audit",), ("badges", "list"),
        ("moderation", "list", "team@example.org"), ("postfix-maps",),
    ],
)  # fmt: skip
def test_commands_refuse_a_database_that_does_not_exist(
    run_cli: CliFn, db_path: Path, args: tuple[str, ...]
) -> None:
    """A mistyped --db must not create an empty database and report "lists 0"."""
    assert_one_line_error(run_cli(*args), f"no database at {dbutil.location(db_path)}")
    assert not dbutil.exists(db_path) and not db_path.parent.joinpath("var").exists()


def test_lists_create_and_demo_start_a_database(run_cli: CliFn, db_path: Path) -> None:
    assert run_cli("demo").code == 0 and dbutil.exists(db_path)


@dbutil.sqlite_only
def test_directory_as_database(run_cli: CliFn, db_path: Path) -> None:
    db_path.mkdir()
    assert_one_line_error(run_cli("lists", "list"), "is a directory")


def test_an_unreachable_postgresql_database_is_one_line_without_its_password(
    run_cli: CliFn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket
    import sys

    from maillist.cli import main

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql://maillist:hunter2@127.0.0.1:{port}/site"
    monkeypatch.setattr(sys, "argv", ["maillist", "--db", url, "status"])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"cannot connect to postgresql://maillist:***@127.0.0.1:{port}/site" in err
    assert "hunter2" not in err
    # libpq's other spelling: the password as a query parameter.
    query = f"postgresql://maillist@127.0.0.1:{port}/site?sslmode=disable&password=hunter3"
    monkeypatch.setattr(sys, "argv", ["maillist", "--db", query, "status"])
    with pytest.raises(SystemExit):
        main()
    err = capsys.readouterr().err
    assert "hunter3" not in err and "password=***" in err

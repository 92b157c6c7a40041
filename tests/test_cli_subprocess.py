"""The real `maillist` command, run as a subprocess, as an admin would use it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import CLI_TIMEOUT, CliFn, assert_one_line_error, clean_env, dump


def test_tour_create_add_grant_list(cli: CliFn) -> None:
    assert cli("lists", "create", "team@Example.ORG", "--name", "Team").code == 0
    r = cli("members", "add", "team@example.org", "anne@example.org", "--name", "Anne Example")
    assert r.code == 0 and "added anne@example.org" in r.out
    assert (
        cli("members", "add", "team@example.org", "bob@example.net", "--role", "moderator").code
        == 0
    )
    assert cli("badges", "grant", "anne@example.org", "Licensee Badge").code == 0

    r = cli("members", "list", "team@example.org", "--json")
    assert r.code == 0 and r.err == ""
    members = json.loads(r.out)
    assert members == [
        {
            "address": "anne@example.org",
            "name": "Anne Example",
            "role": "member",
            "mode": "regular",
            "status": "enabled",
            "disabled_reason": "",
            "bounce_score": 0.0,
            "badges": ["Licensee Badge"],
        },
        {
            "address": "bob@example.net",
            "name": "",
            "role": "moderator",
            "mode": "regular",
            "status": "enabled",
            "disabled_reason": "",
            "bounce_score": 0.0,
            "badges": [],
        },
    ]
    lists = json.loads(cli("lists", "list", "--json").out)
    assert [(entry["address"], entry["members"], entry["moderators"]) for entry in lists] == [
        ("team@example.org", 2, 1)
    ]
    shown = json.loads(cli("lists", "show", "TEAM@example.org", "--json").out)
    assert shown["name"] == "Team" and shown["posting"] == "members"
    assert shown["subject_prefix"] == "[Team]"


def test_error_is_one_line_without_traceback(cli: CliFn, db_path: Path) -> None:
    cli("lists", "create", "team@example.org")
    before = dump(db_path)
    r = cli("members", "add", "team@example.org", "not-an-address")
    assert_one_line_error(r, "invalid address", "not-an-address")
    assert r.code == 1
    r = cli("lists", "show", "ghost@example.org")
    assert_one_line_error(r, "no such list: ghost@example.org")
    assert dump(db_path) == before


def test_export_import_round_trip(cli: CliFn, tmp_path: Path) -> None:
    cli("lists", "create", "a@example.org")
    cli("lists", "create", "b@example.org")
    cli("members", "add", "a@example.org", "x@example.org", "--name", "X, with comma")
    cli("members", "add", "a@example.org", "y@example.org", "--role", "owner", "--mode", "nomail")
    cli("badges", "grant", "x@example.org", "Training Badge")
    exported = cli("members", "export", "a@example.org")
    assert exported.code == 0
    csv_file = tmp_path / "a.csv"
    csv_file.write_text(exported.out)
    r = cli("members", "import", "b@example.org", str(csv_file))
    assert r.code == 0, r.err
    assert "added 2, already members 0, invalid 0" in r.out
    a = json.loads(cli("members", "list", "a@example.org", "--json").out)
    b = json.loads(cli("members", "list", "b@example.org", "--json").out)
    assert a == b  # names, roles, modes, and the site-wide badge on both lists


def test_db_from_environment_and_default_path(cli: CliFn, tmp_path: Path) -> None:
    env_db = tmp_path / "from-env.db"
    proc = subprocess.run(
        [sys.executable, "-m", "maillist", "lists", "create", "env@example.org"],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env=clean_env(MAILLIST_DB=str(env_db)),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert env_db.exists()
    # No --db and no MAILLIST_DB: ./var/maillist.db, directory created on demand.
    r = cli("lists", "create", "default@example.org", db=None)
    assert r.code == 0, r.err
    default_db = tmp_path / "var" / "maillist.db"
    conn = sqlite3.connect(default_db)
    assert conn.execute("SELECT address FROM lists").fetchall() == [("default@example.org",)]
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_json_output_is_only_json(cli: CliFn) -> None:
    assert cli("lists", "create", "team@example.org").code == 0
    for args in (("lists", "list", "--json"), ("badges", "list", "--json"), ("audit", "--json")):
        r = cli(*args)
        assert r.code == 0 and r.err == ""
        assert isinstance(json.loads(r.out), list)


def test_version_and_help(cli: CliFn) -> None:
    r = cli("--version")
    assert r.code == 0 and r.out.startswith("maillist ")
    r = cli("--help")
    assert r.code == 0 and "lists" in r.out and "members" in r.out and "badges" in r.out


def test_usage_error_exit_code(cli: CliFn) -> None:
    r = cli("lists", "create", "x@example.org", "--posting", "sometimes")
    assert r.code == 2 and "Traceback" not in r.err and "sometimes" in r.err

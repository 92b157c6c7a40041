"""`maillist status`, `maillist check` and `maillist postfix-maps`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dbutil
from conftest import CliFn, assert_one_line_error


def test_status_json(run_cli: CliFn, db_path: Path) -> None:
    assert run_cli("demo").code == 0
    result = run_cli("status", "--json")
    assert result.code == 0 and result.err == ""
    data = json.loads(result.out)
    assert data["lists"] == 1 and data["subscriptions"] == 4 and data["schema"] >= 2
    assert data["queue"] == {} and data["oldest_pending"] is None and data["last_errors"] == []
    assert data["database"] == dbutil.location(db_path)
    assert f"database {dbutil.location(db_path)}" in run_cli("status").out


def test_check_passes_then_fails_clearly(run_cli: CliFn, db_path: Path, tmp_path: Path) -> None:
    assert run_cli("lists", "create", "team@example.org").code == 0
    assert run_cli("check").code == 0
    broken = tmp_path / "templates" / "message"
    broken.mkdir(parents=True)
    (broken / "footer.txt.j2").write_text("{{ author.nme.upper() }}")
    assert_one_line_error(
        run_cli("check", "--templates", str(tmp_path / "templates")), "templates do not render"
    )
    conn = dbutil.connect(db_path)
    conn.execute("DELETE FROM site")
    conn.commit()
    conn.close()
    assert_one_line_error(run_cli("check"), "site secret")


def test_postfix_maps(run_cli: CliFn, tmp_path: Path) -> None:
    assert run_cli("lists", "create", "team@Example.org").code == 0
    out = tmp_path / "pf"
    result = run_cli("postfix-maps", "--out", str(out), "--lmtp-port", "2424")
    assert result.code == 0
    transport = (out / "transport").read_text().splitlines()[1:]
    assert transport == [
        f"{a} lmtp:inet:127.0.0.1:2424"
        for a in [
            "team@example.org", "team-request@example.org", "team-owner@example.org",
            "team-join@example.org", "team-leave@example.org", "team-bounces@example.org",
            "team-confirm@example.org",
        ]
    ]  # fmt: skip
    assert "team-bounces@example.org OK" in (out / "recipients").read_text()
    assert (out / "domains").read_text().splitlines()[1:] == ["example.org OK"]


def test_lists_create_and_delete_rewrite_maps(
    run_cli: CliFn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "auto"
    monkeypatch.setenv("MAILLIST_POSTFIX_MAPS", str(out))
    assert run_cli("lists", "create", "a@example.org").code == 0
    assert "a-leave@example.org" in (out / "transport").read_text()
    assert run_cli("lists", "create", "b@example.net").code == 0
    assert run_cli("lists", "delete", "a@example.org", "--yes").code == 0
    text = (out / "transport").read_text()
    assert "a@example.org" not in text and "b@example.net" in text


def test_postfix_maps_unwritable_directory(run_cli: CliFn, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert run_cli("lists", "create", "team@example.org").code == 0
    assert_one_line_error(run_cli("postfix-maps", "--out", str(blocker / "sub")), "cannot create")

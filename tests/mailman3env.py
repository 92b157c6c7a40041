"""Where the tests find GNU Mailman 3 from PyPI: a venv of its own (`make mailman3` builds it;
$MAILLIST_TEST_MAILMAN3 names another). Its package also carries Mailman 2.1 config.pck files
as test data."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("MAILLIST_TEST_MAILMAN3", ROOT / ".cache" / "mailman3"))


def missing() -> str:
    """Why Mailman 3 cannot be used here, or "" when it can."""
    if not (VENV / "bin" / "mailman").exists():
        return f"Mailman 3 is not installed in {VENV} (make mailman3: pip install mailman)"
    return ""


def pck_files() -> dict[str, Path]:
    """Mailman's own Mailman 2.1 config.pck test files, by name."""
    return {p.name: p for p in VENV.glob("lib/python3*/site-packages/mailman/testing/*.pck")}

"""Member CSV files: read rows for `members import`, write what `members export` prints. Pure."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from maillist.errors import BadInput
from maillist.models import ImportRow, Member

COLUMNS = ("address", "name", "role", "mode")
# A cell a spreadsheet would run as a formula (OWASP, CSV injection) is written with a leading
# apostrophe, which the spreadsheet shows as text; import takes that apostrophe off again.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EXPORT_COLUMNS = ("address", "name", "role", "mode", "status", "badges")


def read_rows(path: Path) -> tuple[list[ImportRow], list[str]]:
    """Every data row with its line number, plus warnings (ignored columns).

    `status` and `badges`, which `members export` writes, are read and ignored: new members start
    enabled, and badges are granted site-wide with `maillist badges`, not per list.

    Raises BadInput for a file that cannot be used at all: unreadable, not UTF-8, no header with an
    `address` column, or broken CSV quoting. A path of `-` reads standard input."""
    try:
        if str(path) == "-":
            stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
            return parse(stdin, "stdin")
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return parse(handle, str(path))
    except FileNotFoundError:
        raise BadInput(f"cannot read {path}: no such file") from None
    except IsADirectoryError:
        raise BadInput(f"cannot read {path}: it is a directory") from None
    except PermissionError:
        raise BadInput(
            f"cannot read {path}: permission denied (to import a file this user cannot read, "
            "give it on stdin: members import LIST - < FILE)"
        ) from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"cannot read {path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from None


def parse(handle: TextIO, name: str) -> tuple[list[ImportRow], list[str]]:
    reader = csv.reader(handle, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise BadInput(f"{name} is empty: expected a header row with an 'address' column")
        columns = [h.strip().lower() for h in header]
        if "address" not in columns:
            raise BadInput(
                f"{name}: the header row (line 1) has no 'address' column; "
                f"found: {', '.join(repr(h) for h in header) or 'nothing'}"
            )
        index = {c: columns.index(c) for c in COLUMNS if c in columns}
        unknown = [h for h in columns if h not in EXPORT_COLUMNS]
        warnings = [f"ignoring unknown column(s): {', '.join(unknown)}"] if unknown else []
        rows: list[ImportRow] = []
        for record in reader:
            if not any(field.strip() for field in record):
                continue  # a blank line is not a member
            fields = {c: unguard(record[i]) if i < len(record) else "" for c, i in index.items()}
            rows.append(ImportRow(line=reader.line_num, **fields))
    except csv.Error as exc:
        raise BadInput(f"{name}: malformed CSV at line {reader.line_num}: {exc}") from None
    return rows, warnings


def guard(cell: str) -> str:
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def unguard(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_START) else cell


def write_members(handle: TextIO, members: Iterable[Member]) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for m in members:
        row = (m.address, m.name, m.role.value, m.mode.value, m.status.value, "; ".join(m.badges))
        writer.writerow([guard(cell) for cell in row])

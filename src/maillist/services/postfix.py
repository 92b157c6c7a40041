"""Write the Postfix maps for the current lists (and run postmap on them when it is installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from maillist import postfixmaps
from maillist.db import Store
from maillist.db import lists as db_lists
from maillist.errors import BadInput

FILES = ("transport", "recipients", "domains")


async def write_maps(db: Store, out: Path, host: str = "127.0.0.1", port: int = 8024) -> list[Path]:
    """Write each map atomically (temp file + rename), then `postmap` it if Postfix is there."""
    lists = [s.list for s in await db.read(db_lists.all_lists)]
    texts = {
        "transport": postfixmaps.transport_map(lists, host, port),
        "recipients": postfixmaps.recipient_map(lists),
        "domains": postfixmaps.domains(lists),
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot create {out}: {exc.strerror}") from None
    written = []
    postmap = shutil.which("postmap")
    for name in FILES:
        path = out / name
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(texts[name], encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:
            raise BadInput(f"cannot write {path}: {exc.strerror}") from None
        if postmap:
            result = subprocess.run(
                [postmap, f"hash:{path}"], capture_output=True, text=True, timeout=60
            )
            if result.returncode != 0:
                raise BadInput(f"postmap {path} failed: {result.stderr.strip()[:200]}")
        written.append(path)
    return written


def auto_dir() -> Path | None:
    """Where `lists create/delete` regenerate the maps: $MAILLIST_POSTFIX_MAPS, if set."""
    value = os.environ.get("MAILLIST_POSTFIX_MAPS")
    return Path(value) if value else None

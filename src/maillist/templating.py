"""Jinja2 templates for what members read (footers now; notices and archive pages later).

Templates come from the admin's directory first (`--templates DIR`), then from the project's own
`templates/`, so an admin overrides one file without copying the rest."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from maillist.models import MailingList
from maillist.render import Author


def default_dir() -> Path:
    """`templates/` beside `src/` in a checkout; the copy installed with the package otherwise."""
    checkout = Path(__file__).resolve().parents[2] / "templates"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files("maillist") / "templates"))


class Templates:
    def __init__(self, override: Path | None = None) -> None:
        dirs = [str(d) for d in (override, default_dir()) if d is not None]
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(dirs),
            autoescape=False,  # plain-text mail; header values are encoded by render.header_line
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        self._footer = self.env.get_template("message/footer.txt.j2")

    def footer(
        self, mlist: MailingList, author: Author, unsubscribe: str, member: str | None = None
    ) -> str:
        context: dict[str, Any] = {
            "list": {
                "name": mlist.name,
                "address": mlist.address,
                "description": mlist.description,
                "web_url": mlist.web_url,
            },
            "author": {
                "name": author.name,
                "address": author.address,
                "badges": list(author.badges),
            },
            "member": member,
            "unsubscribe": unsubscribe,
        }
        return self._footer.render(context).rstrip() + "\n"

"""Jinja2 templates for what members read: footers, notices (notices/*.txt.j2), web pages.

Templates come from the admin's directory first (`--templates DIR`), then from the ones installed
with the package (`maillist/templates/`), so an admin overrides one file without copying the rest."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from maillist.mail.render import Author
from maillist.models import MailingList


def default_dir() -> Path:
    """The templates shipped inside the package (the same in a checkout and in a wheel)."""
    return Path(str(resources.files("maillist") / "templates"))


class Templates:
    def __init__(self, override: Path | None = None) -> None:
        dirs = [str(d) for d in (override, default_dir()) if d is not None]
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(dirs),
            # Plain-text mail is not escaped (header values are encoded by render.header_line);
            # HTML pages are.
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html.j2", "atom.j2"), default=False
            ),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        self._footer = self.env.get_template("message/footer.txt.j2")
        self.footer_names_member = _names(self.env, "message/footer.txt.j2", "member")

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
                "badges": list(author.badges) if author.verified else [],
                "verified": author.verified,
            },
            "member": member,
            "unsubscribe": unsubscribe,
        }
        return self._footer.render(context).rstrip() + "\n"

    def notice(self, name: str, mlist: MailingList, **context: Any) -> tuple[str, str]:
        """(subject, body) of notices/NAME.txt.j2, whose first line is `Subject: ...`."""
        listing = {
            "name": mlist.name,
            "address": mlist.address,
            "description": mlist.description,
        }
        text = self.env.get_template(f"notices/{name}.txt.j2").render(list=listing, **context)
        first, _, body = text.partition("\n")
        if not first.startswith("Subject:"):
            raise ValueError(f"notices/{name}.txt.j2 must start with a Subject: line")
        return first.removeprefix("Subject:").strip(), body.lstrip("\n")

    def text(self, name: str, **context: Any) -> str:
        """A plain-text template (not escaped), e.g. "message/digest-contents.txt.j2"."""
        return self.env.get_template(name).render(context)

    def page(self, name: str, **context: Any) -> str:
        """An HTML page (autoescaped), e.g. "web/unsubscribe.html.j2"."""
        return self.env.get_template(name).render(context)


def _names(env: jinja2.Environment, name: str, variable: str) -> bool:
    """Whether template `name` may use `variable`: it names it, or it includes, imports or
    extends another template (whose use this does not follow: assumed yes)."""
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, name)
    tree = env.parse(source)
    referenced = any(True for _ in jinja2.meta.find_referenced_templates(tree))
    return referenced or variable in jinja2.meta.find_undeclared_variables(tree)

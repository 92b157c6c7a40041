"""Notices: mail maillist writes on its own, built from templates/notices/ and queued through the
outbound queue in the caller's transaction, within the site's hourly caps (counted in the
database, so a restart resets nothing; every notice held back is logged)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from maillist import clock, notices
from maillist.db import notices as db_notices
from maillist.db.store import Conn
from maillist.models import MailingList
from maillist.render import sub_address
from maillist.templating import Templates

log = logging.getLogger("maillist.notices")


@dataclass(frozen=True, slots=True)
class NoticeLimits:
    """Site-wide caps (`maillist serve --notices-per-address`, `--notices-per-client`)."""

    per_address_hour: int = 5  # confirmations, refusals, results to one address, all lists
    per_client_hour: int = 30  # notices one connecting client may prompt
    signins_per_address_hour: int = 3  # sign-in links, counted apart from every other notice


# Counted on their own: a stranger who asks for sign-in links for a member's address must not
# use up the notices the member's own requests need (a confirmation, a leave).
APART = ("sign-in",)


class Notifier:
    """Builds notices from templates and queues them, within the caps."""

    def __init__(self, templates: Templates, limits: NoticeLimits | None = None) -> None:
        self.templates = templates
        self.limits = limits or NoticeLimits()

    def send(
        self,
        conn: Conn,
        mlist: MailingList,
        cause_row: int,
        to: str,
        name: str,
        *,
        client: str = "",
        reply_to: str = "",
        in_reply_to: str = "",
        attach: bytes | None = None,
        capped: bool = True,
        envelope_from: str = "",
        **context: Any,
    ) -> bool:
        """Queue notice `name` to `to`; False (and a log line) when a cap holds it back."""
        now = clock.now()
        hour_ago = clock.iso(now - timedelta(hours=1))
        limits = self.limits
        limit = limits.signins_per_address_hour if name in APART else limits.per_address_hour
        if capped and self._sent_to(conn, to, hour_ago, name) >= limit:
            log.warning("notice %s to %s not sent: %d an hour at most", name, to, limit)
            return False
        if (
            capped
            and client
            and db_notices.count_for_client(conn, client, hour_ago) >= limits.per_client_hour
        ):
            log.warning(
                "notice %s to %s not sent: client %s prompted %d this hour",
                name, to, client, limits.per_client_hour,
            )  # fmt: skip
            return False
        context.setdefault("address", to)
        context.update(_addresses(mlist))
        subject, body = self.templates.notice(name, mlist, **context)
        data = notices.build(
            mlist, to, subject, body, when=now, reply_to=reply_to, in_reply_to=in_reply_to,
            attach=attach,
        )  # fmt: skip
        at = clock.iso(now)
        sender = envelope_from or sub_address(mlist, "bounces")
        db_notices.queue(conn, mlist.id, cause_row, sender, to, data, at)
        db_notices.log(conn, at, mlist.id, to, client, name)
        log.info("notice %s to %s for %s", name, to, mlist.address)
        return True

    @staticmethod
    def _sent_to(conn: Conn, to: str, since: str, name: str) -> int:
        if name in APART:
            return db_notices.count_to(conn, to, since, kind=name)
        return db_notices.count_to(conn, to, since, besides=APART)


def _addresses(mlist: MailingList) -> dict[str, str]:
    return {
        "join": sub_address(mlist, "join"),
        "leave": sub_address(mlist, "leave"),
        "request": sub_address(mlist, "request"),
        "owner": sub_address(mlist, "owner"),
    }

"""Notices: mail maillist writes on its own, built from templates/notices/ and queued through the
outbound queue in the caller's transaction, within the site's hourly caps (counted in the
database, so a restart resets nothing; every notice held back is logged)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from maillist import clock
from maillist.db import notices as db_notices
from maillist.db.store import Conn
from maillist.mail import notices
from maillist.mail.render import sub_address
from maillist.models import MailingList
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
# What a member asked for about their own subscription (leaving, a delivery mode): never held
# back by the anti-bombing cap that other notices share, only by a budget of its own per list
# (besides the rule that one confirmation per list, address and action is sent at most hourly).
OWN = frozenset({"confirm-leave", "confirm-mode"})
OWN_PER_HOUR = 3
HELD_BACK = "held-back"


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
        """Queue notice `name` to `to`; False (and a log line) when a cap holds it back. The
        first notice the per-address cap holds back in an hour is replaced by one that says so
        (`held-back`), so nothing a member asked for goes without a word."""
        now = clock.now()
        hour_ago = clock.iso(now - timedelta(hours=1))
        limits = self.limits
        context.setdefault("address", to)
        context.update(_addresses(mlist))
        subject, body = self.templates.notice(name, mlist, **context)
        if capped and self._over(conn, mlist, to, hour_ago, name):
            log.warning("notice %s to %s not sent: over its hourly cap", name, to)
            if name not in APART:
                self._held_back(conn, mlist, cause_row, to, subject, now)
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
        self._queue(conn, mlist, cause_row, to, name, subject, body, now, client=client,
                    reply_to=reply_to, in_reply_to=in_reply_to, attach=attach,
                    envelope_from=envelope_from)  # fmt: skip
        return True

    def _queue(
        self, conn: Conn, mlist: MailingList, cause_row: int, to: str, name: str, subject: str,
        body: str, now: datetime, *, client: str = "", reply_to: str = "",
        in_reply_to: str = "", attach: bytes | None = None, envelope_from: str = "",
    ) -> None:  # fmt: skip
        data = notices.build(
            mlist, to, subject, body, when=now, reply_to=reply_to, in_reply_to=in_reply_to,
            attach=attach,
        )  # fmt: skip
        at = clock.iso(now)
        sender = envelope_from or sub_address(mlist, "bounces")
        db_notices.queue(conn, mlist.id, cause_row, sender, to, data, at)
        db_notices.log(conn, at, mlist.id, to, client, name)
        log.info("notice %s to %s for %s", name, to, mlist.address)

    def _over(self, conn: Conn, mlist: MailingList, to: str, since: str, name: str) -> bool:
        if name in OWN:  # the member's own subscription: a budget of its own, per list
            return db_notices.count_to(conn, to, since, mlist.id, name) >= OWN_PER_HOUR
        if name in APART:
            limit = self.limits.signins_per_address_hour
            return db_notices.count_to(conn, to, since, kind=name) >= limit
        limit = self.limits.per_address_hour
        return db_notices.count_to(conn, to, since, besides=APART) >= limit

    def _held_back(
        self, conn: Conn, mlist: MailingList, cause_row: int, to: str, held: str, now: datetime
    ) -> None:
        """At most once an hour an address hears that answers are being held back."""
        since = clock.iso(now - timedelta(hours=1))
        if db_notices.count_to(conn, to, since, kind=HELD_BACK):
            return
        until = clock.iso(now + timedelta(hours=1))[11:16]
        subject, body = self.templates.notice(
            HELD_BACK, mlist, address=to, held=held, limit=self.limits.per_address_hour,
            until=until, **_addresses(mlist),
        )  # fmt: skip
        self._queue(conn, mlist, cause_row, to, HELD_BACK, subject, body, now)


def _addresses(mlist: MailingList) -> dict[str, str]:
    return {
        "join": sub_address(mlist, "join"),
        "leave": sub_address(mlist, "leave"),
        "request": sub_address(mlist, "request"),
        "owner": sub_address(mlist, "owner"),
    }

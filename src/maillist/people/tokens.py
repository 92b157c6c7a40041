"""Member tokens for one-click unsubscribe links and `LIST-leave+TOKEN` addresses. Pure.

A token names the person (their row id, which is not a secret) and carries an HMAC-SHA256 with
the site secret over the action, the list and the address, truncated to 128 bits: unguessable,
bound to list + address + action, derivable (nothing to store, so a database read hands out no
live token) and never built from anything a sender chose. They are long-lived on purpose: they
sit in old mail, and using one twice only finds the member gone."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

UNSUBSCRIBE = "unsubscribe"  # the action of the token a personalised copy carries
PROBE = "probe"  # the token in the VERP address a bounce warning is sent from
_SHAPE = re.compile(r"^([0-9a-z]{1,12})x([a-z2-7]{26})$")


def member_token(secret: str, action: str, list_address: str, address: str, person_id: int) -> str:
    return f"{_base36(person_id)}x{_mac(secret, action, list_address, address)}"


def person_of(token: str) -> int | None:
    """The person id a well-formed token names (not yet verified), else None."""
    match = _SHAPE.match(token.lower())
    return int(match.group(1), 36) if match else None


def verify(
    token: str, secret: str, action: str, list_address: str, address: str, person_id: int
) -> bool:
    """Constant-time comparison with the token this person would have been given."""
    expected = member_token(secret, action, list_address, address, person_id)
    return bool(secret) and hmac.compare_digest(expected.encode(), token.lower().encode())


def _mac(secret: str, action: str, list_address: str, address: str) -> str:
    message = f"{action}\n{list_address.lower()}\n{address.lower()}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()[:16]
    return base64.b32encode(digest).decode().rstrip("=").lower()


def _base36(number: int) -> str:
    if number < 0:
        raise ValueError(number)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


SESSION = "session"  # the action of a signed-in reader's cookie


def session_cookie(secret: str, address: str, expires: int) -> str:
    """`address|expires|mac`: who signed in, until when (a Unix time), signed with the site
    secret. Nothing is stored: the cookie alone is the session (HttpOnly, SameSite=Lax)."""
    body = f"{address.lower()}|{expires}"
    mac = hmac.new(secret.encode(), f"{SESSION}\n{body}".encode(), hashlib.sha256).hexdigest()
    return f"{body}|{mac[:32]}"


def session_expires(cookie: str) -> int:
    """The expiry a session cookie states (check it with session_address first)."""
    expires = cookie.split("|")[1] if cookie.count("|") == 2 else ""
    return int(expires) if expires.isdigit() else 0


def session_address(secret: str, cookie: str, now: int) -> str:
    """The address a valid, unexpired session cookie names, else ''."""
    address, _, rest = cookie.partition("|")
    expires, _, _ = rest.partition("|")
    if not secret or not expires.isdigit() or int(expires) < now or "@" not in address:
        return ""
    expected = session_cookie(secret, address, int(expires))
    return address if hmac.compare_digest(expected.encode(), cookie.encode()) else ""

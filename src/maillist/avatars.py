"""Pictures for people who have none: initials on a colour, both from the person's account and a
keyed hash of their id (never the address, never a remote service). Pure."""

from __future__ import annotations

import hashlib
import hmac
from html import escape


def key(secret: str, person_id: int) -> str:
    """The unguessable name of a person's picture URL: it says nothing about the address."""
    mac = hmac.new(secret.encode(), f"picture\n{person_id}".encode(), hashlib.sha256)
    return f"{person_id}-{mac.hexdigest()[:20]}"


def person_of(secret: str, picture_key: str) -> int | None:
    number, _, _ = picture_key.partition("-")
    if not number.isdigit() or len(number) > 12:
        return None
    return int(number) if hmac.compare_digest(key(secret, int(number)), picture_key) else None


def initials(name: str, address: str) -> str:
    words = [w for w in name.replace(".", " ").split() if w[:1].isalnum()]
    if not words:
        words = [w for w in address.split("@")[0].replace(".", " ").replace("_", " ").split() if w]
    letters = "".join(w[0] for w in words[:2]).upper()
    return letters or "?"


def svg(secret: str, person_id: int, name: str, address: str, size: int = 48) -> str:
    """An inline SVG: the initials in white on a hue chosen by the keyed hash."""
    digest = hmac.new(secret.encode(), f"colour\n{person_id}".encode(), hashlib.sha256).digest()
    hue = int.from_bytes(digest[:2], "big") % 360
    text = escape(initials(name, address))
    return (
        f'<svg class="avatar" xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 48 48" role="img" aria-label="{escape(name or "member")}">'
        f'<rect width="48" height="48" rx="8" fill="hsl({hue} 45% 38%)"/>'
        f'<text x="24" y="31" text-anchor="middle" font-family="sans-serif" font-size="18" '
        f'fill="#fff">{text}</text></svg>'
    )

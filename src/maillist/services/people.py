"""A person's picture, shown beside their name in the archive: set by an admin, resized here
(Pillow) and stored; without one the archive draws initials (avatars.py)."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from maillist.clock import stamp
from maillist.db import Conn, Store
from maillist.db import audit as db_audit
from maillist.db import people as db_people
from maillist.errors import BadInput, UnknownPerson
from maillist.people.addresses import normalise

MAX_FILE = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a decompression bomb is refused before it is decoded
SIZE = 128


def thumbnail(data: bytes) -> bytes:
    """A square PNG of SIZE pixels, cropped from the middle; BadInput if it is not an image."""
    if len(data) > MAX_FILE:
        raise BadInput(f"a picture is at most {MAX_FILE // (1024 * 1024)} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise BadInput(f"a picture is at most {MAX_PIXELS:,} pixels")
            image.load()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise BadInput(f"a picture is at most {MAX_PIXELS:,} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadInput(f"not a picture Pillow can read: {type(exc).__name__}") from None
    side = min(image.width, image.height)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    square = image.convert("RGB").crop((left, top, left + side, top + side))
    out = io.BytesIO()
    square.resize((SIZE, SIZE), Image.Resampling.LANCZOS).save(out, "PNG", optimize=True)
    return out.getvalue()


async def set_picture(db: Store, address: str, data: bytes, *, actor: str) -> int:
    """Store the resized picture; returns its size in bytes."""
    png = thumbnail(data)
    canonical = normalise(address)

    def store(conn: Conn) -> None:
        person = db_people.by_address(conn, canonical)
        if person is None:
            raise UnknownPerson(f"no such person: {canonical} (add them to a list first)")
        db_people.set_picture(conn, person.id, png, "image/png")
        db_audit.record(conn, stamp(), actor, "people.picture", canonical, f"{len(png)} bytes")

    await db.write(store)
    return len(png)

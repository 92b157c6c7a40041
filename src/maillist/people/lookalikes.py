"""Addresses that look like other addresses (Unicode TR 39): mixed scripts, and skeletons. Pure.

A skeleton maps every character to one representative of its confusable set (data: the Unicode
confusables table as shipped by the `confusable_homoglyphs` package), after NFD and case
folding; two addresses with one skeleton look the same to a reader ("anne" written with a
Cyrillic U+0430 and "anne" with a Latin a)."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from confusable_homoglyphs import categories, confusables  # type: ignore[import-untyped]

_NEUTRAL = {"COMMON", "INHERITED"}


@lru_cache(maxsize=65_536)
def _representative(char: str) -> str:
    group = [char] + [h["c"] for h in confusables.confusables_data.get(char, [])]
    return str(min(group, key=lambda c: (len(c), [ord(x) for x in c])))


def skeleton(address: str) -> str:
    text = unicodedata.normalize("NFD", address.casefold())
    mapped = "".join(_representative(c) for c in text)
    return unicodedata.normalize("NFD", mapped)


def mixed_script(address: str) -> str:
    """'' if fine, else which part mixes scripts (e.g. 'local part: CYRILLIC, LATIN')."""
    local, _, domain = address.rpartition("@")
    for label, text in (("local part", local), ("domain", domain.replace(".", ""))):
        scripts = sorted(set(categories.unique_aliases(text)) - _NEUTRAL)
        if len(scripts) > 1:
            return f"{label}: {', '.join(scripts)}"
    return ""

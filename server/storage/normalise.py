"""Text as the directory compares it: case-free, accent-free, single-spaced ("Hélène" finds "helene")."""

from __future__ import annotations

import unicodedata


def normalise(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(stripped.casefold().split())

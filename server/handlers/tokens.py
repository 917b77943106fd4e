"""Session tokens and invite codes: random, shown once, stored only as a hash.

SHA-256 suffices for both: they carry 256 and 100 bits of entropy, so no
stretching is needed, and looking them up by hash keeps any comparison of the
secret itself out of reach of timing.
"""

from __future__ import annotations

import base64
import hashlib
import secrets


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_invite_code() -> str:
    """Readable over the phone: four groups of five base32 characters (100 bits)."""
    text = base64.b32encode(secrets.token_bytes(15)).decode()[:20]
    return "-".join(text[i : i + 5] for i in range(0, 20, 5))


def invite_hash(code: str) -> bytes:
    normalised = "".join(code.split()).replace("-", "").upper()
    return hashlib.sha256(b"lien-invite:" + normalised.encode()).digest()

"""argon2id password hashing, on a small pool of its own off the event loop.

Each hash holds 64 MiB and already runs its four lanes on four threads, so
more hashes at once than the pool's threads would buy no speed on a small
machine and only memory: a burst of logins or registrations (HTTP is not
rate-limited by Lien itself) queues here instead of taking one thread of the
default executor each, 64 MiB apiece, and starving the other work that
executor runs.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

CONCURRENT_HASHES: Final = 2
"""Hashes computed at once per node: memory for hashing stays under 2 x 64 MiB."""

# argon2-cffi's defaults are RFC 9106's "low memory" argon2id profile.
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("lien-timing-equaliser")
_hashing_pool = ThreadPoolExecutor(max_workers=CONCURRENT_HASHES, thread_name_prefix="argon2id")


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_hashing_pool, _hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not the account exists (no user enumeration by timing)."""

    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.get_running_loop().run_in_executor(_hashing_pool, check)

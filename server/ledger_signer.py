"""The server's ledger key, and the task that signs the chain head (docs/protocol.md §10.3).

Each node signs with the Ed25519 key in ``--ledger-key-file`` (default
``<data-dir>/ledger.key``, created on first start: 32 random bytes, hex, file
mode 0600). Nodes of a cluster may share one key or have their own: every
signed head carries its public key and key id, so a verifier needs nothing
else, and ``GET /v1/ledger/keys`` lists every key that ever signed. To rotate,
give a node a new key file: heads signed before stay verifiable with the old
key they name.

Every ``--ledger-sign-interval`` seconds, if the chain moved, the node signs
the current head. A proof also signs the head on demand when no signed head
covers its entries yet.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import nacl.signing

from lien import ledger as chain
from server.storage import ledger
from server.storage.database import Database

logger = logging.getLogger(__name__)


def load_or_create_key(path: Path) -> nacl.signing.SigningKey:
    """The key in ``path``; a new one is written there (0600) when the file does not exist."""
    if path.exists():
        try:
            seed = bytes.fromhex(path.read_text().strip())
        except ValueError:
            raise ValueError(f"{path} does not hold a hex Ed25519 seed") from None
        if len(seed) != 32:
            raise ValueError(f"{path} does not hold a 32-byte Ed25519 seed")
        return nacl.signing.SigningKey(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    seed = secrets.token_bytes(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, seed.hex().encode() + b"\n")
    finally:
        os.close(descriptor)
    logger.info("created a new ledger signing key in %s", path)
    return nacl.signing.SigningKey(seed)


class LedgerSigner:
    def __init__(
        self, database: Database, key: nacl.signing.SigningKey, *, interval: float, clock: Callable[[], int]
    ) -> None:
        self._database = database
        self._key = key
        self._public = bytes(key.verify_key)
        self.key_id = chain.key_id(self._public)
        self._interval = interval
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    @property
    def public_key(self) -> bytes:
        return self._public

    def start(self) -> None:
        if self._task is None and self._interval > 0:
            self._task = asyncio.create_task(self._run(), name="lien-ledger-signer")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sign_now()
            except Exception:
                logger.warning("could not sign the ledger head", exc_info=True)

    async def sign_now(self) -> chain.SignedHead | None:
        """Sign the current head if no signed head covers it yet; the head that covers it."""
        async with self._database.read() as connection:
            current = await ledger.head(connection)
            if current.seq == 0:
                return None
            if await ledger.last_signed_seq(connection) >= current.seq:
                return await ledger.signed_head_at_or_after(connection, current.seq)
        signed_at = self._clock()
        signature = self._key.sign(
            chain.head_signing_input(current.seq, current.hash, signed_at, self.key_id)
        ).signature
        signed = chain.SignedHead(
            seq=current.seq,
            hash=current.hash,
            signed_at=signed_at,
            key_id=self.key_id,
            public_key=self._public,
            signature=signature,
        )
        async with self._database.write() as connection:
            await ledger.store_signed_head(connection, signed)
        return signed

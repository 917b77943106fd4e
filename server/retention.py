"""Retention: ciphertext is temporary; the ledger keeps hashes and times for a set period.

* One to one copies live only in device inboxes and go when the device acks.
* A group message's single ciphertext goes once no inbox entry points at it
  any more (every member device acked), or with its entries at the maximum age.
* Inbox entries older than ``--message-max-age-days`` (devices that never came
  back) are deleted, ciphertext included.
* After ``--ledger-retention-days``, ledger entries, message metadata,
  receipts and ciphertext hashes go too. One entry before the retained part
  is kept so that the first retained entry's chain segment can still be
  checked; signed heads are kept.

Every node may run it: each pass is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from server.storage import retention
from server.storage.database import Database

logger = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Policy:
    message_max_age_days: int
    ledger_retention_days: int


async def purge(database: Database, policy: Policy, now: int) -> retention.Purged:
    async with database.write() as connection:
        return await retention.purge(
            connection,
            inbox_before=now - policy.message_max_age_days * DAY_MS,
            ledger_before=now - policy.ledger_retention_days * DAY_MS,
            now=now,
        )


class RetentionTask:
    def __init__(
        self, database: Database, policy: Policy, *, interval: float, clock: Callable[[], int]
    ) -> None:
        self._database = database
        self._policy = policy
        self._interval = interval
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None and self._interval > 0:
            self._task = asyncio.create_task(self._run(), name="lien-retention")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                purged = await purge(self._database, self._policy, self._clock())
            except Exception:
                logger.warning("retention pass failed", exc_info=True)
                continue
            if purged.any:
                logger.info("retention: %s", purged)

"""Waking the nodes that hold the devices a transaction just wrote to (docs/architecture.md, "Fan-out").

Store first, notify second: called after the commit. A notice carries the
stored frame itself, so the receiving node pushes it without reading it back;
a notice the broker loses only delays delivery (the inbox is the truth).
"""

from __future__ import annotations

import logging

from server.broker import BrokerUnavailable
from server.services import Services
from server.storage import messages
from server.ws import notices

logger = logging.getLogger(__name__)


async def announce(services: Services, entries: list[messages.QueuedEntry]) -> None:
    """Wake whichever nodes hold the addressed devices; a failure only delays delivery."""
    written = [entry for entry in entries if entry.written]
    if not written:
        return
    try:
        await services.broker.publish_many(
            [
                (
                    notices.device_channel(entry.device_id),
                    notices.inbox_entry(entry.seq, entry.created_at, entry.frame),
                )
                for entry in written
            ]
        )
    except BrokerUnavailable:
        services.metrics.broker_failures.inc()
        logger.warning("broker unavailable: %d notices not published; inboxes keep them", len(written))

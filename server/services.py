"""The node's long-lived parts, built once at start and handed to every handler."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from server.broker import Broker
from server.ledger_signer import LedgerSigner
from server.metrics import Metrics
from server.presence import PresenceStore
from server.ratelimit import RateLimiter
from server.settings import Settings
from server.storage.committer import GroupCommitter
from server.storage.database import Database

if TYPE_CHECKING:
    from server.ws.hub import Hub


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Caller:
    """Who is behind an authenticated request or socket."""

    user_id: int
    username: str
    device_id: int
    session_id: int
    expires_at: int = 0
    """When the session token expires (ms); 0 when unknown."""


@dataclass
class Services:
    settings: Settings
    database: Database
    committer: GroupCommitter
    broker: Broker
    presence: PresenceStore
    metrics: Metrics
    hub: Hub
    signer: LedgerSigner
    rate_limiter: RateLimiter
    password_limiter: RateLimiter
    """Password attempts per username (sign-in, device removal): protocol §4.4."""
    clock: Callable[[], int] = now_ms
    user_ids: dict[str, int] = field(default_factory=dict)
    """username -> user id; usernames never change, so entries never go stale."""
    known_contacts: set[tuple[int, int]] = field(default_factory=set)
    """Contact pairs this node already wrote, to skip the upsert on the hot path."""

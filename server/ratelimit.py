"""Fair use: a token bucket of messages per account, shared by every node (docs/protocol.md §6.10).

The same buckets, keyed by username and without leases, bound the password
attempts on each account (sign-in, device removal; protocol §4.4).

Each account may send ``rate`` messages per second on average and ``burst`` at
once. With Redis the bucket lives there (one Lua script, atomic, on Redis's own
clock), so the limit holds across nodes; without Redis it lives in the
process. A refused send is answered ``rate-limited`` with the delay after which
it will pass; the sender's SDK waits that long and sends again, so nothing is
lost, and one account's flood cannot slow the others.

Each node takes a few tokens more than it needs from the shared bucket and
spends them on the account's next sends for half a second (a *lease*), so
that most sends cost no round trip to Redis; the shared bucket still counts
every token, so an account never sends more than its limit.

If Redis cannot be reached the limiter lets messages through (and logs): a
care message must never be refused for a broken counter.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from lien.protocol import limits
from server.broker.pipelined import PipelinedCommands
from server.broker.redis import UNREACHABLE, make_command_client

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grant:
    granted: int
    """How many of the messages asked for may go now (the first ones, in order)."""
    retry_after: float
    """Seconds until the next one may go; 0 when all were granted."""


Key = int | str
"""What a bucket counts for: an account id (messages) or a username (password attempts)."""


class RateLimiter(Protocol):
    async def take(self, key: Key, count: int) -> Grant: ...

    async def give_back(self, key: Key, count: int) -> None:
        """Return tokens taken for attempts that turned out not to count (a right password)."""

    async def close(self) -> None: ...


class InMemoryRateLimiter:
    def __init__(self, *, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: dict[Key, tuple[float, float]] = {}

    async def take(self, key: Key, count: int) -> Grant:
        now = time.monotonic()
        tokens, updated = self._buckets.get(key, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - updated) * self._rate)
        granted = min(count, math.floor(tokens))
        tokens -= granted
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > 100_000:
            self._forget_full(now)
        return Grant(granted, 0.0 if granted == count else (1 - tokens) / self._rate)

    async def give_back(self, key: Key, count: int) -> None:
        bucket = self._buckets.get(key)
        if bucket is not None:
            tokens, updated = bucket
            self._buckets[key] = (min(float(self._burst), tokens + count), updated)

    def _forget_full(self, now: float) -> None:
        full = [
            key
            for key, (tokens, updated) in self._buckets.items()
            if tokens + (now - updated) * self._rate >= self._burst
        ]
        for key in full:
            del self._buckets[key]

    async def close(self) -> None:
        self._buckets.clear()


_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate / 1000)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
local wait = 0
if granted < want then wait = math.ceil((1 - tokens) / rate * 1000) end
return {granted, wait}
"""


_GIVE_BACK = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens'))
if tokens == nil then return 0 end
redis.call('HSET', KEYS[1], 'tokens', tostring(math.min(tonumber(ARGV[1]), tokens + tonumber(ARGV[2]))))
return 1
"""


LEASE_SECONDS = 0.5
"""How long a node keeps tokens it took ahead; unspent ones then lapse."""
_MAX_LEASES = 10_000
"""Leases kept before the lapsed ones are swept (at most once per lease lifetime)."""


def lease_size(rate: float, burst: int) -> int:
    """Tokens a node takes beyond those it needs: an eighth of the burst, at most a quarter second's worth.

    At the defaults (20/s, burst 60) that is 5: one Redis round trip for
    about six sends. With a burst under 8 it is 0 (no lease).
    """
    return min(burst // 8, math.ceil(rate / 4))


@dataclass
class _Lease:
    tokens: int
    until: float
    """``time.monotonic()`` after which the tokens lapse."""


class RedisRateLimiter:
    def __init__(
        self,
        url: str,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        prefix: str = "lien:rate",
        lease: bool = True,
    ) -> None:
        self._client: Redis = make_command_client(url)
        self._rate = rate
        self._burst = burst
        self._prefix = prefix
        self._extra = lease_size(rate, burst) if lease else 0
        self._leases: dict[Key, _Lease] = {}
        self._swept_at = -math.inf
        self._clock = clock
        # Takes of every connection of the node that arrive together share a round trip. EVAL, not
        # EVALSHA: Redis keeps the compiled script by its hash, and a pipeline never meets NOSCRIPT.
        self._commands = PipelinedCommands(self._client)

    async def take(self, key: Key, count: int) -> Grant:
        leased = self._spend_lease(key, count)
        if leased == count:
            return Grant(count, 0.0)
        needed = count - leased
        try:
            [reply] = await self._commands.execute(
                [("EVAL", _TAKE, 1, f"{self._prefix}:{key}", self._rate, self._burst, needed + self._extra)]
            )
        except UNREACHABLE:
            logger.warning("rate limiter: Redis unreachable; letting messages through")
            return Grant(count, 0.0)
        if isinstance(reply, Exception):
            logger.warning("rate limiter: Redis refused the script (%s); letting messages through", reply)
            return Grant(count, 0.0)
        granted, wait_ms = int(reply[0]), int(reply[1])
        if granted < needed:
            return Grant(leased + granted, wait_ms / 1000)
        self._keep_lease(key, granted - needed)
        return Grant(count, 0.0)

    async def give_back(self, key: Key, count: int) -> None:
        try:
            [reply] = await self._commands.execute(
                [("EVAL", _GIVE_BACK, 1, f"{self._prefix}:{key}", self._burst, count)]
            )
        except UNREACHABLE:
            logger.warning("rate limiter: Redis unreachable; tokens not given back")
            return
        if isinstance(reply, Exception):
            logger.warning("rate limiter: Redis refused the script (%s); tokens not given back", reply)

    def _spend_lease(self, key: Key, count: int) -> int:
        """Tokens of the bucket's lease spent on ``count`` takes (all it holds, at most ``count``)."""
        lease = self._leases.get(key)
        if lease is None:
            return 0
        if lease.until <= self._clock():
            del self._leases[key]
            return 0
        spent = min(count, lease.tokens)
        lease.tokens -= spent
        if lease.tokens == 0:
            del self._leases[key]
        return spent

    def _keep_lease(self, key: Key, spare: int) -> None:
        if spare <= 0:
            return
        now = self._clock()
        if len(self._leases) >= _MAX_LEASES and now - self._swept_at >= LEASE_SECONDS:
            self._swept_at = now
            self._leases = {key: lease for key, lease in self._leases.items() if lease.until > now}
        lease = self._leases.get(key)
        if lease is None or lease.until <= now:
            self._leases[key] = _Lease(spare, now + LEASE_SECONDS)
        else:
            lease.tokens += spare

    async def close(self) -> None:
        await self._commands.close()
        await self._client.aclose()


def make_rate_limiter(
    redis_url: str | None, *, rate: float, burst: int, prefix: str = "lien:rate", lease: bool = True
) -> RateLimiter:
    if redis_url:
        return RedisRateLimiter(redis_url, rate=rate, burst=burst, prefix=prefix, lease=lease)
    return InMemoryRateLimiter(rate=rate, burst=burst)


def make_password_limiter(redis_url: str | None) -> RateLimiter:
    """Password attempts per username: ``PASSWORD_ATTEMPTS_BURST`` wrong ones, then one a minute.

    An attempt is taken before the password is hashed, whether the username
    exists or not (the answer must not tell), and given back when the
    password was right: guessing costs the guesser time, and the node no
    argon2id work once the bucket is empty. No lease: a node must not hold
    attempts ahead.
    """
    return make_rate_limiter(
        redis_url,
        rate=1 / limits.PASSWORD_ATTEMPT_REFILL_SECONDS,
        burst=limits.PASSWORD_ATTEMPTS_BURST,
        prefix="lien:password",
        lease=False,
    )

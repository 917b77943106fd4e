"""Who is online, across nodes.

A user is online while at least one of their devices holds a connection on some
node. In one process that is a count; across nodes it lives in Redis, in a hash
``lien:presence:{user_id}`` with one field per connected device whose value is
the time (ms since the epoch) at which that entry expires. Each node refreshes
the entries of its own devices every ``ttl / 3``; a node that dies without
saying goodbye (SIGKILL, power loss) stops refreshing, and its devices fall
offline by themselves once their entries expire. Node clocks must agree to well
within the TTL (NTP).

``device_id`` is the server's device id. Counts are kept per device, so a
device connected twice (a new connection replacing an old one, perhaps on
another node) needs two ``device_offline`` calls: the old connection going
away never marks its successor offline.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Protocol

from redis.asyncio import Redis

from server.broker import BrokerUnavailable
from server.broker.redis import UNREACHABLE, make_command_client

logger = logging.getLogger(__name__)

_USERS_PER_PIPELINE = 500


class PresenceStore(Protocol):
    async def device_online(self, user_id: int, device_id: int) -> bool:
        """Record a connected device; True if the user was offline before."""

    async def device_offline(self, user_id: int, device_id: int) -> bool:
        """Record a disconnected device; True if the user is now offline everywhere."""

    async def online(self, user_ids: Sequence[int]) -> set[int]:
        """Those of ``user_ids`` who have at least one device online."""

    async def online_devices(self, user_id: int) -> set[int]:
        """The user's devices connected on any node (fair use: ``--max-connections-per-account``)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class _LocalDevices:
    """The devices connected to this process, counted per user and device."""

    def __init__(self) -> None:
        self.by_user: dict[int, Counter[int]] = {}

    def add(self, user_id: int, device_id: int) -> tuple[bool, bool]:
        """Count one connection; returns (user was absent, device was absent)."""
        devices = self.by_user.setdefault(user_id, Counter())
        user_was_absent = not devices
        devices[device_id] += 1
        return user_was_absent, devices[device_id] == 1

    def remove(self, user_id: int, device_id: int) -> tuple[bool, bool]:
        """Uncount one connection; returns (user is now absent, device is now absent)."""
        devices = self.by_user.get(user_id)
        if devices is None:
            return True, True
        devices[device_id] -= 1
        device_gone = devices[device_id] <= 0
        if device_gone:
            del devices[device_id]
        if not devices:
            del self.by_user[user_id]
            return True, device_gone
        return False, device_gone

    def has(self, user_id: int, device_id: int) -> bool:
        return device_id in self.by_user.get(user_id, ())


class InMemoryPresence:
    """Presence for the embedded single node: everything is in this process."""

    def __init__(self) -> None:
        self._local = _LocalDevices()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def device_online(self, user_id: int, device_id: int) -> bool:
        user_was_absent, _ = self._local.add(user_id, device_id)
        return user_was_absent

    async def device_offline(self, user_id: int, device_id: int) -> bool:
        user_now_absent, _ = self._local.remove(user_id, device_id)
        return user_now_absent

    async def online(self, user_ids: Sequence[int]) -> set[int]:
        return {user_id for user_id in user_ids if user_id in self._local.by_user}

    async def online_devices(self, user_id: int) -> set[int]:
        return set(self._local.by_user.get(user_id, ()))


class RedisPresence:
    """Presence shared by every node through Redis.

    Hash fields are ``{device_id}:{node}`` (``node`` is random per instance), so
    two nodes never overwrite or delete each other's entries for one device.
    The local count is updated before Redis is written: when Redis is away the
    call raises :class:`BrokerUnavailable` and the next refresh repairs Redis.
    """

    def __init__(self, url: str, *, ttl_seconds: float = 45.0) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._client: Redis = make_command_client(url)
        self._ttl_ms = max(1, round(ttl_seconds * 1000))
        self._refresh_every = ttl_seconds / 3
        self._node = secrets.token_hex(4)
        self._local = _LocalDevices()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        try:
            await self._client.ping()
        except UNREACHABLE as exc:
            raise BrokerUnavailable(f"cannot reach Redis for presence: {exc}") from exc
        self._task = asyncio.create_task(self._refresh_forever(), name="lien-presence-refresh")

    async def close(self) -> None:
        """Stop refreshing; entries still in Redis expire after the TTL."""
        task, self._task = self._task, None
        self._closing = True
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        await self._client.aclose()

    async def device_online(self, user_id: int, device_id: int) -> bool:
        user_was_absent, device_was_absent = self._local.add(user_id, device_id)
        if not device_was_absent:
            return False  # already written, and kept fresh by the refresh task
        now = _now_ms()
        key, field = _key(user_id), self._field(device_id)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hgetall(key)
                pipe.hset(key, field, now + self._ttl_ms)
                pipe.pexpire(key, 2 * self._ttl_ms)
                before, _, _ = await pipe.execute()
        except UNREACHABLE as exc:
            raise BrokerUnavailable(f"cannot record presence: {exc}") from exc
        before.pop(field.encode(), None)  # an old entry of ours, just overwritten
        was_online, expired = _split_entries(before, now)
        await self._tidy(key, expired)
        return not was_online and user_was_absent

    async def device_offline(self, user_id: int, device_id: int) -> bool:
        user_now_absent, device_now_absent = self._local.remove(user_id, device_id)
        if not user_now_absent and not device_now_absent:
            return False  # the same device is still connected here
        key = _key(user_id)
        now = _now_ms()
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hdel(key, self._field(device_id))
                pipe.hgetall(key)
                _, after = await pipe.execute()
        except UNREACHABLE as exc:
            raise BrokerUnavailable(f"cannot record presence: {exc}") from exc
        still_online, expired = _split_entries(after, now)
        await self._tidy(key, expired)
        return user_now_absent and not still_online

    async def online(self, user_ids: Sequence[int]) -> set[int]:
        found = {user_id for user_id in user_ids if user_id in self._local.by_user}
        elsewhere = [user_id for user_id in dict.fromkeys(user_ids) if user_id not in found]
        now = _now_ms()
        try:
            for chunk in _chunks(elsewhere, _USERS_PER_PIPELINE):
                async with self._client.pipeline(transaction=False) as pipe:
                    for user_id in chunk:
                        pipe.hvals(_key(user_id))
                    expiries = await pipe.execute()
                found.update(
                    user_id
                    for user_id, values in zip(chunk, expiries, strict=True)
                    if any(int(value) > now for value in values)
                )
        except UNREACHABLE as exc:
            raise BrokerUnavailable(f"cannot read presence: {exc}") from exc
        return found

    async def online_devices(self, user_id: int) -> set[int]:
        now = _now_ms()
        try:
            entries = await self._client.hgetall(_key(user_id))
        except UNREACHABLE as exc:
            raise BrokerUnavailable(f"cannot read presence: {exc}") from exc
        devices = set()
        for field, expiry in entries.items():
            name = field.decode() if isinstance(field, bytes) else str(field)
            if int(expiry) > now:
                devices.add(int(name.split(":", 1)[0]))
        return devices

    def _field(self, device_id: int) -> str:
        return f"{device_id}:{self._node}"

    async def _tidy(self, key: str, expired: list[bytes]) -> None:
        """Drop entries left by dead nodes; best effort, the TTL covers a failure."""
        if not expired:
            return
        try:
            await self._client.hdel(key, *expired)
        except UNREACHABLE as exc:
            logger.debug("presence: could not drop expired entries (%s)", exc)

    async def _refresh_forever(self) -> None:
        # Also ends by itself once closing: a cancellation that lands inside a Redis call can be
        # lost (a socket timeout firing at the same moment turns it into a TimeoutError, which is
        # caught below), and close() would then wait for this loop forever.
        while True:
            await asyncio.sleep(self._refresh_every)
            if self._closing:
                return
            try:
                await self._refresh()
            except UNREACHABLE as exc:
                logger.warning("presence: cannot refresh this node's devices (%s)", exc)

    async def _refresh(self) -> None:
        """Push back the expiry of every device connected to this node."""
        for chunk in _chunks(list(self._local.by_user), _USERS_PER_PIPELINE):
            # Read the devices now, not from an older snapshot, so a device that
            # went offline during an earlier chunk is not written back.
            written = [(user_id, list(self._local.by_user.get(user_id, ()))) for user_id in chunk]
            expiry = _now_ms() + self._ttl_ms
            async with self._client.pipeline(transaction=False) as pipe:
                for user_id, devices in written:
                    if devices:
                        pipe.hset(_key(user_id), mapping=dict.fromkeys(map(self._field, devices), expiry))
                        pipe.pexpire(_key(user_id), 2 * self._ttl_ms)
                await pipe.execute()
            # A device that went offline while the pipeline was in flight may have
            # had its HDEL overtaken by our HSET: delete it again.
            async with self._client.pipeline(transaction=False) as pipe:
                stale = 0
                for user_id, devices in written:
                    gone = [self._field(d) for d in devices if not self._local.has(user_id, d)]
                    if gone:
                        pipe.hdel(_key(user_id), *gone)
                        stale += 1
                if stale:
                    await pipe.execute()


def make_presence(redis_url: str | None, *, ttl_seconds: float = 45.0) -> PresenceStore:
    """Redis-backed presence when a URL is configured, else in-process."""
    if redis_url:
        return RedisPresence(redis_url, ttl_seconds=ttl_seconds)
    return InMemoryPresence()


def _key(user_id: int) -> str:
    return f"lien:presence:{user_id}"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _split_entries(entries: dict[bytes, bytes], now_ms: int) -> tuple[bool, list[bytes]]:
    """(any entry still live, fields of expired entries)."""
    live = False
    expired = []
    for field, expiry in entries.items():
        if int(expiry) > now_ms:
            live = True
        else:
            expired.append(field)
    return live, expired


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

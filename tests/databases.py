"""Real databases for tests: a fresh SQLite file or a fresh PostgreSQL database per test.

PostgreSQL is used when reachable (``LIEN_TEST_POSTGRES``, default the local
server with trust auth); its tests are skipped otherwise, unless
``LIEN_REQUIRE_POSTGRES=1`` (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES_ADMIN_URL = os.environ.get("LIEN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


ADMIN_DSN = _asyncpg_dsn(POSTGRES_ADMIN_URL)
"""The administration database, for asyncpg."""


async def _postgres_reachable() -> bool:
    import asyncpg

    try:
        connection = await asyncio.wait_for(asyncpg.connect(_asyncpg_dsn(POSTGRES_ADMIN_URL)), 3)
    except Exception:
        return False
    await connection.close()
    return True


_reachable: bool | None = None


def postgres_available() -> bool:
    global _reachable
    if _reachable is None:
        _reachable = asyncio.run(_postgres_reachable())
    return _reachable


def require_postgres() -> None:
    if postgres_available():
        return
    if os.environ.get("LIEN_REQUIRE_POSTGRES") == "1":
        pytest.fail(
            f"PostgreSQL is required (LIEN_REQUIRE_POSTGRES=1) but {POSTGRES_ADMIN_URL} is unreachable"
        )
    pytest.skip("PostgreSQL is not reachable")


async def _admin(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(_asyncpg_dsn(POSTGRES_ADMIN_URL))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _postgres_url_for(name: str) -> str:
    base, _, _ = _asyncpg_dsn(POSTGRES_ADMIN_URL).rpartition("/")
    return base.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name


def fresh_postgres_database() -> Iterator[str]:
    """Create a uniquely named database, yield its SQLAlchemy URL, drop it afterwards."""
    name = f"lien_test_{secrets.token_hex(6)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _postgres_url_for(name)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'lien.db'}"

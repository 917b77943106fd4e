"""The `lien` command: serve, migrate, invite."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from lien.protocol import limits
from server.settings import OPTIONS, Settings, add_arguments, build_settings, env_name


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def serve(settings: Settings) -> None:
    import uvicorn

    from server.app import create_app

    _configure_logging(settings.log_level)
    logging.getLogger(__name__).info("starting Lien with %r", settings)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws_max_size=limits.TRANSPORT_MAX_FRAME_BYTES,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        timeout_graceful_shutdown=10,
        server_header=False,
    )


async def _migrate(settings: Settings) -> None:
    from server.storage.database import Database
    from server.storage.migrate import upgrade_to_head

    database = Database(settings.effective_database_url)
    try:
        await upgrade_to_head(database)
    finally:
        await database.close()


async def _invite(settings: Settings, note: str, days: int) -> str:
    from server.handlers.tokens import invite_hash, new_invite_code
    from server.services import now_ms
    from server.storage import accounts
    from server.storage.database import Database
    from server.storage.migrate import upgrade_to_head

    database = Database(settings.effective_database_url)
    try:
        await upgrade_to_head(database)
        code = new_invite_code()
        now = now_ms()
        async with database.write() as connection:
            await accounts.create_invite(
                connection,
                code_hash=invite_hash(code),
                note=note,
                now=now,
                expires_at=now + days * 86_400_000,
            )
        return code
    finally:
        await database.close()


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a ``.env`` file (comments and blanks skipped); the environment wins over it."""
    if not path.is_file():
        return {}
    found = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            found[key.strip()] = value.strip().strip('"').strip("'")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lien", description="Lien secure messaging server")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "run a server node"),
        ("migrate", "apply database migrations and exit"),
        ("invite", "create a one-time invite code for registration"),
    ):
        command = commands.add_parser(name, help=help_text)
        add_arguments(command)
        if name == "invite":
            command.add_argument("--note", default="", help="who the invite is for (stored, not secret)")
            command.add_argument("--days", type=int, default=14, help="days before the code expires")
    arguments = parser.parse_args(argv)
    flags = {option.name: getattr(arguments, option.name, None) for option in OPTIONS}
    try:
        settings = build_settings(flags, {**read_dotenv(Path(".env")), **os.environ})
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    if arguments.command == "serve":
        serve(settings)
    elif arguments.command == "migrate":
        _configure_logging(settings.log_level)
        asyncio.run(_migrate(settings))
        print("database is up to date")
    else:
        code = asyncio.run(_invite(settings, arguments.note, arguments.days))
        print(code)
    return 0


__all__ = ["env_name", "main"]

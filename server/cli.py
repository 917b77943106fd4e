"""The `lien` command: serve, migrate, invite."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict

from lien.protocol import limits
from server import collector
from server.settings import OPTIONS, Settings, add_arguments, build_settings, env_name


class WebSocketOptions(TypedDict):
    ws_max_size: int
    ws_ping_interval: float
    ws_ping_timeout: float
    ws_per_message_deflate: bool


WEBSOCKET_OPTIONS = WebSocketOptions(
    ws_max_size=limits.TRANSPORT_MAX_FRAME_BYTES,
    ws_ping_interval=20.0,
    ws_ping_timeout=20.0,
    # No permessage-deflate, though browsers always offer it (docs/protocol.md §2.2): ciphertext
    # does not compress, and each socket's zlib state cost the node 40 KiB more than the socket.
    ws_per_message_deflate=False,
)
"""uvicorn's WebSocket settings for every node (and the tests' in-process server, and the baseline relay)."""


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
    app = create_app(settings)
    collector.settle_for_serving()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        **WEBSOCKET_OPTIONS,
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


def _parse_day(value: str) -> int:
    """``YYYY-MM-DD`` (UTC midnight) or ``YYYY-MM-DDTHH:MM`` to ms since the epoch."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {value!r} (YYYY-MM-DD)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


async def _export(settings: Settings, arguments: argparse.Namespace) -> str:
    from server.handlers import exports
    from server.services import now_ms
    from server.storage.database import Database

    database = Database(settings.effective_database_url)
    try:
        export = await exports.build(
            database,
            now_ms(),
            username=arguments.user,
            organisation=arguments.organisation,
            start=arguments.start,
            end=arguments.end,
        )
    finally:
        await database.close()
    if arguments.format == "html":
        return exports.to_html(export, now_ms())
    return exports.to_csv(export)


def verify_proof_file(path: Path, keys_file: Path | None = None, key_ids: Sequence[str] = ()) -> int:
    """Check a proof bundle offline; print what it proves; 0 when every check holds."""
    import msgspec

    from lien.ledger import proof_decoder
    from lien.proofs import NOT_PROVEN, verify_proof
    from lien.protocol.api import LedgerKeys

    try:
        proof = proof_decoder.decode(path.read_bytes())
        trusted = set(key_ids) or None
        if keys_file is not None:
            published = msgspec.json.decode(keys_file.read_bytes(), type=LedgerKeys)
            trusted = (trusted or set()) | {key.key_id for key in published.keys}
    except (OSError, msgspec.MsgspecError) as exc:
        print(f"cannot read {exc}", file=sys.stderr)
        return 2
    verdict = verify_proof(proof, trusted)
    for finding in verdict.findings:
        print(("✔ " if finding.ok else "✘ ") + finding.statement)
    if proof.evidence is None:
        print("· The bundle holds no signed text: it proves the exchange, not what was said.")
    print()
    if not verdict.proven:
        print("NOT PROVEN: the bundle was altered, reordered or does not match.")
    elif verdict.unchecked_keys:
        keys = ", ".join(sorted(verdict.unchecked_keys))
        print(
            f"PROVEN, provided {keys} is the server's key: compare with GET /v1/ledger/keys (or pass --keys)."
        )
    else:
        print("PROVEN")
    print(NOT_PROVEN)
    return 0 if verdict.proven else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lien", description="Lien secure messaging server")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "run a server node"),
        ("migrate", "apply database migrations and exit"),
        ("invite", "create a one-time invite code for registration"),
        ("export", "audit export of an account or an organisation (CSV or printable HTML)"),
    ):
        command = commands.add_parser(name, help=help_text)
        add_arguments(command)
        if name == "invite":
            command.add_argument("--note", default="", help="who the invite is for (stored, not secret)")
            command.add_argument("--days", type=int, default=14, help="days before the code expires")
        if name == "export":
            who = command.add_mutually_exclusive_group(required=True)
            who.add_argument("--user", help="the account to export")
            who.add_argument("--organisation", help="every account of this organisation (exact name)")
            command.add_argument(
                "--from", dest="start", type=_parse_day, help="start, YYYY-MM-DD (default: 3 months ago)"
            )
            command.add_argument("--to", dest="end", type=_parse_day, help="end, YYYY-MM-DD (default: now)")
            command.add_argument("--format", choices=("csv", "html"), default="csv")
            command.add_argument("--output", type=Path, help="file to write (default: standard output)")
    check = commands.add_parser("verify-proof", help="check a message's proof bundle offline")
    check.add_argument(
        "file", type=Path, help="a bundle from GET /v1/messages/{id}/proof or Client.message_proof"
    )
    check.add_argument(
        "--keys", type=Path, help="the server's published keys (the JSON of GET /v1/ledger/keys)"
    )
    check.add_argument("--key-id", action="append", default=[], help="a key id known to be the server's")
    arguments = parser.parse_args(argv)
    if arguments.command == "verify-proof":
        return verify_proof_file(arguments.file, arguments.keys, arguments.key_id)
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
    elif arguments.command == "export":
        from lien.protocol.errors import LienError

        try:
            report = asyncio.run(_export(settings, arguments))
        except LienError as error:
            print(f"export refused: {error.message}", file=sys.stderr)
            return 2
        if arguments.output is None:
            sys.stdout.write(report)
        else:
            arguments.output.write_text(report, encoding="utf-8")
    else:
        code = asyncio.run(_invite(settings, arguments.note, arguments.days))
        print(code)
    return 0


__all__ = ["env_name", "main"]

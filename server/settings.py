"""Settings, built once at start from CLI flags, then ``LIEN_*`` variables, then defaults.

No other module reads the environment: the frozen :class:`Settings` is passed
down explicitly. Secrets (URLs that may hold passwords) can also come from a
file named by ``LIEN_<NAME>_FILE``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lien.protocol import limits


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    database_url: str | None = None
    """SQLAlchemy URL; None means SQLite in ``data_dir``."""
    redis_url: str | None = None
    """None means the in-process broker (a single node)."""
    open_registration: bool = True
    session_ttl_seconds: int = limits.SESSION_TTL_SECONDS
    log_level: str = "info"
    migrate_on_start: bool = True
    max_group_members: int = limits.MAX_GROUP_MEMBERS
    """Members per group, the creator included (at most ``limits.MAX_GROUP_MEMBERS_CEILING``)."""
    node_name: str = ""
    """Shown in /healthz and logs; defaults to host:port."""
    message_rate: float = 20.0
    """Messages per second one account may send on average, across every node (fair use)."""
    message_burst: int = 60
    """Messages one account may send at once before the rate applies."""
    max_connections_per_account: int = limits.MAX_DEVICES_PER_USER
    """Devices of one account connected at the same time."""
    message_max_age_days: int = 30
    """Ciphertext waiting for a device that never acks is deleted after this many days."""
    ledger_retention_days: int = 3650
    """Ledger entries (hashes and times, never text) and message metadata are kept this long."""
    retention_interval: float = 300.0
    """Seconds between retention passes."""
    ledger_key_file: Path | None = None
    """The ledger signing key (hex Ed25519 seed); None means ``<data_dir>/ledger.key``, created if missing."""
    ledger_sign_interval: float = 1.0
    """Seconds between signatures of the ledger head (when it moved)."""
    web_dir: Path | None = None
    """The browser client's folder; None means the ``web_client`` folder next to ``server`` when present."""

    def __post_init__(self) -> None:
        if self.message_max_age_days < 1 or self.ledger_retention_days < self.message_max_age_days:
            raise ValueError(
                "message_max_age_days must be at least 1, and ledger_retention_days at least that"
            )
        if self.message_rate <= 0 or self.message_burst < 1 or self.max_connections_per_account < 1:
            raise ValueError("message_rate, message_burst and max_connections_per_account must be positive")
        if not 2 <= self.max_group_members <= limits.MAX_GROUP_MEMBERS_CEILING:
            raise ValueError(f"max_group_members must be from 2 to {limits.MAX_GROUP_MEMBERS_CEILING}")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'lien.db').resolve()}"

    @property
    def effective_ledger_key_file(self) -> Path:
        return self.ledger_key_file or self.data_dir / "ledger.key"

    @property
    def effective_web_dir(self) -> Path | None:
        if self.web_dir is not None:
            return self.web_dir
        bundled = Path(__file__).resolve().parent.parent / "web_client"
        return bundled if bundled.is_dir() else None

    @property
    def effective_node_name(self) -> str:
        return self.node_name or f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        # URLs may carry passwords: show only their scheme.
        shown = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in {"database_url", "redis_url"}
        }
        for secret in ("database_url", "redis_url"):
            value = getattr(self, secret)
            shown[secret] = None if value is None else value.split(":", 1)[0] + ":…"
        return f"Settings({shown})"


@dataclass(frozen=True)
class Option:
    """One setting as a flag and an environment variable."""

    name: str
    flag: str
    help: str
    secret: bool = False


OPTIONS: tuple[Option, ...] = (
    Option("host", "--host", "address to listen on"),
    Option("port", "--port", "port to listen on"),
    Option("data_dir", "--data-dir", "directory for the embedded SQLite database"),
    Option("database_url", "--database-url", "SQLAlchemy URL, e.g. postgresql+asyncpg://...", secret=True),
    Option(
        "redis_url",
        "--redis-url",
        "Redis URL for fan-out between nodes, e.g. redis://host:6379/0",
        secret=True,
    ),
    Option("open_registration", "--open-registration", "anyone may register (else invite codes)"),
    Option("session_ttl_seconds", "--session-ttl", "lifetime of a session token, in seconds"),
    Option("log_level", "--log-level", "debug, info, warning or error"),
    Option("migrate_on_start", "--migrate-on-start", "apply database migrations when serving"),
    Option("max_group_members", "--max-group-members", "members per care-team group, the creator included"),
    Option("node_name", "--node-name", "name of this node in logs and /healthz"),
    Option(
        "ledger_key_file",
        "--ledger-key-file",
        "the ledger signing key file (default <data-dir>/ledger.key)",
    ),
    Option("ledger_sign_interval", "--ledger-sign-interval", "seconds between signatures of the ledger head"),
    Option("message_max_age_days", "--message-max-age-days", "days before undelivered ciphertext is deleted"),
    Option(
        "ledger_retention_days", "--ledger-retention-days", "days the ledger and message metadata are kept"
    ),
    Option("retention_interval", "--retention-interval", "seconds between retention passes"),
    Option("message_rate", "--message-rate", "messages per second one account may send (fair use)"),
    Option("message_burst", "--message-burst", "messages one account may send at once"),
    Option(
        "max_connections_per_account",
        "--max-connections-per-account",
        "devices of one account online at once",
    ),
    Option("web_dir", "--web-dir", "folder of the browser client to serve at / (default: the bundled one)"),
)


def env_name(option: Option) -> str:
    return "LIEN_" + option.name.upper() if option.name != "session_ttl_seconds" else "LIEN_SESSION_TTL"


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


def _convert(name: str, raw: str) -> object:
    field_type = {f.name: f.type for f in dataclasses.fields(Settings)}[name]
    if field_type == "int":
        return int(raw)
    if field_type == "float":
        return float(raw)
    if field_type == "bool":
        return _parse_bool(raw)
    if field_type == "Path | None":
        return Path(raw) if raw.strip() else None
    if field_type == "Path":
        return Path(raw)
    return raw


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every setting as a flag (default None: unset flags fall back to the environment)."""
    for option in OPTIONS:
        kind = {f.name: f.type for f in dataclasses.fields(Settings)}[option.name]
        if kind == "bool":
            parser.add_argument(
                option.flag,
                dest=option.name,
                default=None,
                action=argparse.BooleanOptionalAction,
                help=f"{option.help} ({env_name(option)})",
            )
        else:
            parser.add_argument(
                option.flag, dest=option.name, default=None, help=f"{option.help} ({env_name(option)})"
            )


def build_settings(
    flags: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Flags win over ``LIEN_*`` variables (or ``LIEN_*_FILE`` for secrets), which win over defaults."""
    flags = flags or {}
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for option in OPTIONS:
        flagged = flags.get(option.name)
        if flagged is not None:
            values[option.name] = flagged if not isinstance(flagged, str) else _convert(option.name, flagged)
            continue
        variable = env_name(option)
        if variable in environ:
            values[option.name] = _convert(option.name, environ[variable])
        elif option.secret and f"{variable}_FILE" in environ:
            secret = Path(environ[f"{variable}_FILE"]).read_text().strip()
            values[option.name] = _convert(option.name, secret)
    return Settings(**values)  # type: ignore[arg-type]

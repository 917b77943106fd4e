"""The settings of one run of `lien-desktop`, built once from the command line and the environment.

Folders follow the platform's conventions (``platformdirs``; on Linux the XDG base
directories, so ``XDG_CONFIG_HOME``, ``XDG_DATA_HOME`` and ``XDG_RUNTIME_DIR`` move
them). No other module reads the environment.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs

from desktop_client import APP_NAME

EVENT_LOG_VARIABLE = "LIEN_DESKTOP_EVENT_LOG"
"""Names a file where the desktop side effects (notifications shown, title, window brought
forward) are appended as JSON lines, for tests and diagnosis. Never message text: a
notification names the sender only."""


class SettingsError(ValueError):
    """A command-line value that cannot be used; the message is for the user."""


@dataclass(frozen=True)
class DesktopSettings:
    server_url: str | None
    """From ``--server``: the server's origin; None to use the remembered one."""
    config_dir: Path
    data_dir: Path
    """The web view's profile (IndexedDB holds the encrypted keystore and history)."""
    runtime_dir: Path
    """The single-instance lock and socket."""
    event_log: Path | None
    debug: bool


def normalise_server_url(url: str) -> str:
    """``http(s)://host[:port]``: the web client runs at the server's root, so only an origin is kept."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"not a server address: {url!r} (expected http://host:port or https://host)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise SettingsError(f"the server address must not have a path: {url!r}")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _runtime_dir() -> Path:
    # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to a folder in /tmp;
    # this does the same, quietly, and keeps the folder per user.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = platformdirs.user_runtime_dir(APP_NAME)
    if path:
        return Path(path)
    return Path(tempfile.gettempdir()) / f"{APP_NAME}-{os.getuid()}"  # pragma: no cover


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lien-desktop",
        description="Lien in its own window, with desktop notifications.",
    )
    parser.add_argument(
        "--server",
        metavar="URL",
        help="the Lien server, e.g. https://lien.example.org (remembered for the next runs)",
    )
    parser.add_argument("--debug", action="store_true", help="verbose log and the web inspector")
    return parser


def build_settings(argv: Sequence[str] | None, environ: Mapping[str, str]) -> DesktopSettings:
    """Parse ``argv`` (without the program name); exits with a usage message on bad flags."""
    arguments = _parser().parse_args(argv)
    server = normalise_server_url(arguments.server) if arguments.server else None
    event_log = environ.get(EVENT_LOG_VARIABLE) or None
    return DesktopSettings(
        server_url=server,
        config_dir=Path(platformdirs.user_config_dir(APP_NAME)),
        data_dir=Path(platformdirs.user_data_dir(APP_NAME)),
        runtime_dir=_runtime_dir(),
        event_log=Path(event_log) if event_log else None,
        debug=bool(arguments.debug),
    )

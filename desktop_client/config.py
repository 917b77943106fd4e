"""What the desktop application remembers between runs: the server and the window's geometry.

One small JSON file, ``config.json`` in the user's config folder, written atomically
(a temporary file, then a rename). A missing or unreadable file gives the defaults:
the application still starts, and the next save repairs it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import msgspec

logger = logging.getLogger(__name__)

DEFAULT_SERVER_URL = "http://127.0.0.1:8000"
MIN_WIDTH = 640
MIN_HEIGHT = 480


class WindowGeometry(msgspec.Struct, frozen=True, kw_only=True):
    width: int = 1100
    height: int = 720
    x: int | None = None
    """None: let the window system place it."""
    y: int | None = None
    maximized: bool = False

    def clamped(self) -> WindowGeometry:
        """Never smaller than the minimum (a file edited by hand, a window squeezed to nothing)."""
        return msgspec.structs.replace(
            self, width=max(self.width, MIN_WIDTH), height=max(self.height, MIN_HEIGHT)
        )


class DesktopConfig(msgspec.Struct, frozen=True, kw_only=True):
    server_url: str = DEFAULT_SERVER_URL
    window: WindowGeometry = msgspec.field(default_factory=WindowGeometry)


class ConfigStore:
    """The config file. Loads and saves whole `DesktopConfig` values."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "config.json"

    def load(self) -> DesktopConfig:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return DesktopConfig()
        except OSError as error:
            logger.warning("cannot read %s (%s): using the defaults", self.path, error.strerror)
            return DesktopConfig()
        try:
            config = msgspec.json.decode(raw, type=DesktopConfig)
        except msgspec.DecodeError as error:
            logger.warning("ignoring %s, which is not a valid config (%s)", self.path, error)
            return DesktopConfig()
        return msgspec.structs.replace(config, window=config.window.clamped())

    def save(self, config: DesktopConfig) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = msgspec.json.format(msgspec.json.encode(config), indent=2) + b"\n"
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".config-", suffix=".json")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def remembered_server(store: ConfigStore, requested: str | None) -> tuple[str, DesktopConfig]:
    """The server to open: ``requested`` (``--server``, then remembered) or the one remembered."""
    config = store.load()
    if requested is not None and requested != config.server_url:
        config = msgspec.structs.replace(config, server_url=requested)
        store.save(config)
    return config.server_url, config

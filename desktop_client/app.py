"""``lien-desktop [--server URL]``: Lien's web client in its own window.

Start-up, in order: settings; one instance per user (a second launch brings the
first window forward and exits); the remembered config (the server given now is
remembered for next time); the notifier; the window on the local "connecting"
page; then the server's page as soon as it answers. At exit the window's
geometry is saved. SIGTERM closes the window the same way as its close button.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Literal

import msgspec

from desktop_client.bridge import BASE_TITLE, Bridge, EventLog
from desktop_client.config import ConfigStore, WindowGeometry, remembered_server
from desktop_client.loader import IS_LIEN_SCRIPT, PageLoader, offline_page
from desktop_client.notifier import system_notifier
from desktop_client.page_api import make_page_api
from desktop_client.passphrases import PassphraseStore
from desktop_client.settings import DesktopSettings, SettingsError, build_settings
from desktop_client.single_instance import SingleInstance

logger = logging.getLogger("desktop_client")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = build_settings(argv, os.environ)
    except SettingsError as error:
        print(f"lien-desktop: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if settings.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per probe of the server otherwise
    instance = SingleInstance(settings.runtime_dir)
    if SingleInstance.supported() and not instance.acquire():
        if instance.signal_primary():
            print("Lien est déjà ouvert : sa fenêtre passe au premier plan.", file=sys.stderr)
            return 0
        print("lien-desktop: Lien is already running but does not answer.", file=sys.stderr)
        return 1
    try:
        return run(settings, instance)
    finally:
        instance.close()


def gui_name() -> Literal["qt"] | None:
    """Qt on Linux (the one backend the tests cover there); the platform's own elsewhere."""
    return "qt" if sys.platform.startswith("linux") else None


def run(settings: DesktopSettings, instance: SingleInstance) -> int:
    try:
        import webview
    except ImportError:
        print("lien-desktop needs its extras: pip install 'lien[desktop]'", file=sys.stderr)
        return 1
    from desktop_client.native_window import NativeWindow

    store = ConfigStore(settings.config_dir)
    server_url, config = remembered_server(store, settings.server_url)

    icon = Path(str(resources.files("desktop_client").joinpath("resources/lien.svg")))
    notifier = system_notifier(icon)
    logger.info("server %s, notifications: %s", server_url, notifier.name)
    gui = gui_name()
    window = NativeWindow(gui)
    loader = PageLoader(server_url, window)
    bridge = Bridge(
        window=window,
        notifier=notifier,
        passphrases=PassphraseStore(server_url),
        event_log=EventLog(settings.event_log),
        on_retry=loader.retry_now,
    )
    native = window.open(
        title=BASE_TITLE,
        html=offline_page(server_url, "connecting"),
        js_api=make_page_api(bridge),
        geometry=config.window,
    )
    native.events.loaded += lambda: loader.page_loaded(bool(window.run_script(IS_LIEN_SCRIPT)))
    if instance.supported():
        instance.listen(lambda: bridge.bring_forward("second-instance"))

    def close_on_sigterm(signum: int, frame: FrameType | None) -> None:
        logger.info("SIGTERM: closing the window")
        window.close()

    signal.signal(signal.SIGTERM, close_on_sigterm)
    try:
        webview.start(
            loader.start,
            gui=gui,
            debug=settings.debug,
            private_mode=False,  # the keystore and history live in the page's IndexedDB
            storage_path=str(settings.data_dir / "webview"),
            icon=str(icon),
        )
    finally:
        loader.stop()
        notifier.close()
        save_geometry(store, window.last_geometry())
    return 0


def save_geometry(store: ConfigStore, geometry: WindowGeometry | None) -> None:
    if geometry is not None:
        store.save(msgspec.structs.replace(store.load(), window=geometry))

"""The desktop application in a real window (Xvfb): start offline, sign in, a notification, come back.

One ``lien-desktop`` process against one live node, driven over DevTools the way a
person would use it, with a notification service on a private D-Bus; what the desktop
did natively (notifications, window title, bringing the window forward, the keyring)
is read from its event log (``LIEN_DESKTOP_EVENT_LOG``), from the notification service
and from the test keyring file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import lien
from tests.databases import sqlite_url
from tests.desktop import DesktopApp, DevToolsPage, NotificationService, Xvfb
from tests.desktop_keyring import FILE_VARIABLE
from tests.live import LiveNode
from tests.web import PASSWORD, SCREENSHOTS

pytestmark = [pytest.mark.desktop, pytest.mark.live, pytest.mark.slow]

ALERT = "Kaliémie 6,8 mmol/L chez Mme Lefèvre — rappelez-moi."
WEB_CLIENT = "Boolean(document.querySelector('script[type=importmap]') && document.querySelector('#app h1'))"
CONNECTED = "document.querySelector('.connection')?.dataset.state === 'ready'"
BANNER_SHOWN = "document.querySelector('.desktop-banner')?.hidden === false"


async def sign_in(page: DevToolsPage, username: str, *, remember: bool) -> None:
    await page.wait_for(
        "document.querySelector('#signin-username') && document.querySelector('.desktop-remember')"
    )
    await page.fill("#signin-username", username)
    await page.fill("#signin-password", PASSWORD)
    if remember:
        await page.click("input[name=remember-password]")
    await page.click("form button[type=submit]")
    await page.wait_for(CONNECTED)


async def test_desktop_window_from_offline_start_to_notification_and_unlocked_restart(
    xvfb: Xvfb, session_bus: str, tmp_path: Path
) -> None:
    node = LiveNode(database_url=sqlite_url(tmp_path), data_dir=tmp_path, name="desktop")
    keyring_file = tmp_path / "keyring.json"
    notifications = NotificationService(session_bus, ["actions", "body"])
    app = DesktopApp(
        tmp_path,
        xvfb.display,
        extra_env={
            "DBUS_SESSION_BUS_ADDRESS": session_bus,
            "PYTHON_KEYRING_BACKEND": "tests.desktop_keyring.FileKeyring",
            FILE_VARIABLE: str(keyring_file),
        },
    )
    try:
        # The server is down at start: the window shows the local page, which retries.
        app.start("--server", node.url)
        page = await app.page()
        reason = await page.wait_for(
            "document.body.dataset.state === 'offline' && document.getElementById('reason').textContent"
        )
        assert "serveur" in reason
        await page.next_frame()
        xvfb.screenshot(SCREENSHOTS / "desktop-offline.png")
        await page.click("#retry")  # through the bridge: the loader tries again at once
        await app.wait_for_event("retry")
        node.start()
        await page.wait_for(WEB_CLIENT)  # the next try finds it

        keystores = tmp_path / "sdk"
        doctor = await lien.Client.register(
            node.url, "dr.martin", PASSWORD, keystore=keystores / "martin", display_name="Dr Hélène Martin"
        )
        await doctor.close()
        lab = await lien.Client.register(
            node.url, "labo.durand", PASSWORD, keystore=keystores / "labo", display_name="Laboratoire Durand"
        )

        # Sign in from the window, agreeing to keep the password in the keyring.
        await sign_in(page, "dr.martin", remember=True)
        await app.wait_for_event("passphrase", action="remember", username="dr.martin", stored=True)
        assert PASSWORD in json.loads(keyring_file.read_text()).values()

        # A message from the SDK: a desktop notification naming the sender (never the text), the title.
        async with lab:
            await lab.connect()
            await lab.send_text("dr.martin", ALERT)
            notification = await app.wait_for_event("notification")
            assert (notification["summary"], notification["notifier"]) == ("Lien", "dbus")
            assert notification["body"] == "Nouveau message de Laboratoire Durand"
            assert ALERT not in app.event_log.read_text(encoding="utf-8")
            await app.wait_for_event("title", title="(1) Lien")
            notifications.wait_for_calls(1)
            assert notifications.calls[0][3:5] == ("Lien", "Nouveau message de Laboratoire Durand")

            # A click on it brings the window forward and opens the conversation.
            notifications.click(1)
            await app.wait_for_event("forward", reason="notification")
            await page.wait_for(
                "document.querySelector('button.conversation-item[aria-current=true]')?.dataset.peer"
            )
            await page.wait_for(
                f"document.querySelector('li.message.incoming .text')?.textContent === {json.dumps(ALERT)}"
            )
            await app.wait_for_event("title", title="Lien")
            await page.next_frame()
            xvfb.screenshot(SCREENSHOTS / "desktop-window.png")

        # A second launch brings this window forward and exits.
        second = app.launch()
        assert second.wait(30) == 0
        await app.wait_for_event("forward", reason="second-instance")

        # The server goes away: a banner and the title say so; it comes back: both clear.
        node.stop()
        await page.wait_for(BANNER_SHOWN)
        await app.wait_for_event("title", title="Lien — hors ligne")
        await page.next_frame()
        xvfb.screenshot(SCREENSHOTS / "desktop-offline-banner.png")
        await page.click(".desktop-banner button")  # "Réessayer maintenant": still down, still shown
        await page.wait_for(BANNER_SHOWN)
        node.start()
        await page.wait_for(f"{CONNECTED} && !({BANNER_SHOWN})")

        # Closed and opened again: same server, same geometry, unlocked from the keyring.
        await page.close()
        assert app.stop() == 0
        config = json.loads(app.config_file.read_text())
        assert config["server_url"] == node.url
        assert (config["window"]["width"], config["window"]["height"]) == (1100, 720)
        app.start()
        page = await app.page()
        await page.wait_for(CONNECTED)
        await page.click('button.conversation-item[data-peer="labo.durand"]')
        await page.wait_for(
            f"document.querySelector('li.message.incoming .text')?.textContent === {json.dumps(ALERT)}"
        )

        # Signing out forgets the password: the next start asks for it.
        await page.click(".me button:last-child")
        await app.wait_for_event("passphrase", action="forget", username="dr.martin")
        assert json.loads(keyring_file.read_text()) == {}
        await page.close()
    finally:
        app.cleanup()
        node.stop()
        notifications.close()

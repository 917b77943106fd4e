"""desktop_client.notifier: the freedesktop service over a private D-Bus, notify-send, and none.

The D-Bus tests run a private ``dbus-daemon`` (the ``session_bus`` fixture) and a small
notification service on it (`tests.desktop.NotificationService`), so the real protocol
is spoken: a Notify call, a click that comes back, a replacement per conversation.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from desktop_client.notifier import (
    DBusNotifier,
    Notification,
    NotifySendNotifier,
    NullNotifier,
    system_notifier,
)
from tests.desktop import WAIT, NotificationService


def test_a_notification_goes_to_the_service_and_a_click_on_it_comes_back(session_bus: str) -> None:
    service = NotificationService(session_bus, ["actions", "body"])
    notifier = DBusNotifier.connect(icon=Path("/icons/lien.svg"))
    assert notifier is not None
    try:
        assert (notifier.name, notifier.clickable) == ("dbus", True)
        clicked = threading.Event()
        notifier.show(Notification("Lien", "Nouveau message de Dr Martin", "lien-Dr Martin"), clicked.set)
        service.wait_for_calls(1)
        app, replaces, icon, summary, body, actions, hints, timeout = service.calls[0]
        assert hints["category"] == ("s", "im.received")
        assert (app, replaces, icon, summary, body) == (
            "Lien",
            0,
            "/icons/lien.svg",
            "Lien",
            "Nouveau message de Dr Martin",
        )
        assert actions == ["default", "Ouvrir"]
        assert timeout == -1

        # The same conversation again replaces the first notification.
        notifier.show(Notification("Lien", "Nouveau message de Dr Martin", "lien-Dr Martin"), clicked.set)
        service.wait_for_calls(2)
        assert service.calls[1][1] == 1

        service.click(1)
        assert clicked.wait(WAIT)
    finally:
        notifier.close()
        service.close()


def test_a_service_without_actions_gets_notifications_without_a_button(session_bus: str) -> None:
    service = NotificationService(session_bus, ["body"])
    notifier = DBusNotifier.connect()
    assert notifier is not None
    try:
        assert not notifier.clickable
        notifier.show(Notification("Lien", "Nouveau message de X", "lien-X"), lambda: None)
        service.wait_for_calls(1)
        assert service.calls[0][5] == []
    finally:
        notifier.close()
        service.close()


def test_a_bus_without_a_notification_service_falls_back(
    session_bus: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert DBusNotifier.connect() is None
    monkeypatch.setenv("PATH", "")
    assert isinstance(system_notifier(), NullNotifier)


def test_no_bus_and_no_notify_send_means_no_notifications(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("PATH", "")
    notifier = system_notifier()
    assert isinstance(notifier, NullNotifier)
    notifier.show(Notification("Lien", "Nouveau message de X", "lien-X"), lambda: None)  # nothing, no error
    notifier.close()


def test_notify_send_is_used_when_there_is_no_bus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "args"
    fake = tmp_path / "notify-send"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    fake.chmod(0o755)
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    notifier = system_notifier(icon=Path("/icons/lien.svg"))
    assert isinstance(notifier, NotifySendNotifier)
    notifier.show(Notification("Lien", "Nouveau message de -Dr X", "lien-X"), lambda: None)
    assert record.read_text().splitlines() == [
        "--app-name=Lien",
        "--icon=/icons/lien.svg",
        "--",
        "Lien",
        "Nouveau message de -Dr X",
    ]

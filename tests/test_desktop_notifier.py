"""desktop_client.notifier: the freedesktop service over a private D-Bus, notify-send, and none.

The D-Bus test runs a private ``dbus-daemon`` and a small notification service on it
(the interface's three calls and its ``ActionInvoked`` signal), so the real protocol
is spoken: a Notify call, a click that comes back, a replacement per conversation.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop_client.notifier import (
    DBusNotifier,
    Notification,
    NotifySendNotifier,
    NullNotifier,
    system_notifier,
)

PATH = "/org/freedesktop/Notifications"
INTERFACE = "org.freedesktop.Notifications"
WAIT = 10.0


class NotificationService:
    """Answers GetCapabilities, GetServerInformation and Notify; can emit ActionInvoked."""

    def __init__(self, address: str, capabilities: list[str]) -> None:
        from jeepney.bus_messages import message_bus
        from jeepney.io.threading import open_dbus_connection

        self.capabilities = capabilities
        self.calls: list[tuple[Any, ...]] = []
        self.notified = threading.Event()
        self.connection = open_dbus_connection(bus=address)
        self.connection.send(message_bus.RequestName(INTERFACE))
        self.next_id = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        from jeepney import HeaderFields, MessageType, new_method_return
        from jeepney.io.threading import ReceiveStopped

        while True:
            try:
                message = self.connection.receive()
            except (ReceiveStopped, OSError):
                return
            header = message.header
            if header.message_type != MessageType.method_call or header.fields.get(HeaderFields.path) != PATH:
                continue
            member = header.fields.get(HeaderFields.member)
            if member == "GetCapabilities":
                self.connection.send(new_method_return(message, "as", (self.capabilities,)))
            elif member == "GetServerInformation":
                self.connection.send(new_method_return(message, "ssss", ("fake", "lien", "1", "1.2")))
            elif member == "Notify":
                self.calls.append(tuple(message.body))
                replaces = int(message.body[1])
                if not replaces:
                    self.next_id += 1
                self.connection.send(new_method_return(message, "u", (replaces or self.next_id,)))
                self.notified.set()

    def click(self, notification_id: int) -> None:
        from jeepney import DBusAddress, new_signal

        signal_message = new_signal(
            DBusAddress(PATH, interface=INTERFACE), "ActionInvoked", "us", (notification_id, "default")
        )
        self.connection.send(signal_message)

    def wait_for_calls(self, count: int) -> None:
        import time

        deadline = time.monotonic() + WAIT
        while len(self.calls) < count:
            assert time.monotonic() < deadline, self.calls
            self.notified.wait(0.1)
            self.notified.clear()

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def session_bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if shutil.which("dbus-daemon") is None:
        pytest.skip("needs dbus-daemon")
    pytest.importorskip("jeepney")
    daemon = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert daemon.stdout is not None
        address = daemon.stdout.readline().strip()  # printed once the bus accepts clients
        assert address, "dbus-daemon did not start"
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        yield address
    finally:
        os.kill(daemon.pid, signal.SIGTERM)
        daemon.wait(10)
        if daemon.stdout is not None:
            daemon.stdout.close()


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

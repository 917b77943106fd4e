"""Desktop notifications: D-Bus ``org.freedesktop.Notifications``, else ``notify-send``, else none.

`system_notifier()` picks the best one this session has:

1. `DBusNotifier` speaks the freedesktop notification protocol on the session bus
   (``jeepney``, pure Python). A notification carries a ``default`` action, so a
   click on it calls back (``ActionInvoked``) and the window comes forward.
   A new notification about the same conversation replaces the previous one.
2. `NotifySendNotifier` runs ``notify-send`` (libnotify): shown, but a click does nothing.
3. `NullNotifier` when there is no notification service (a bare X server, a
   headless machine): nothing is shown outside the window, where the unread
   counts and the title still say it all.

A notification names the sender, never the text: it may show on a shared screen.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

APP_NAME = "Lien"
NOTIFY_TIMEOUT = 3.0
"""Seconds to wait for the notification service to answer one call."""


@dataclass(frozen=True)
class Notification:
    summary: str
    body: str
    tag: str
    """Notifications with the same tag replace each other (one per conversation)."""


OnClick = Callable[[], None]


class Notifier(Protocol):
    name: str

    def show(self, notification: Notification, on_click: OnClick) -> None:
        """Show it; ``on_click`` runs (on some thread) if the user clicks it, where supported."""

    def close(self) -> None: ...


class NullNotifier:
    """No notification service: nothing shown outside the window."""

    name = "none"

    def show(self, notification: Notification, on_click: OnClick) -> None:
        logger.debug("no notification service: %s not shown", notification.tag)

    def close(self) -> None:
        pass


class NotifySendNotifier:
    """``notify-send``: shown, no click."""

    name = "notify-send"

    def __init__(self, executable: str, icon: Path | None = None) -> None:
        self.executable = executable
        self.icon = icon

    @classmethod
    def find(cls, icon: Path | None = None) -> NotifySendNotifier | None:
        executable = shutil.which("notify-send")
        return cls(executable, icon) if executable else None

    def show(self, notification: Notification, on_click: OnClick) -> None:
        command = [self.executable, f"--app-name={APP_NAME}"]
        if self.icon is not None:
            command.append(f"--icon={self.icon}")
        command += ["--", notification.summary, notification.body]
        try:
            subprocess.run(command, check=True, timeout=NOTIFY_TIMEOUT, capture_output=True)
        except (OSError, subprocess.SubprocessError) as error:
            logger.warning("notify-send failed: %s", error)

    def close(self) -> None:
        pass


class DBusNotifier:
    """The freedesktop notification service on the session bus, with click-to-open."""

    name = "dbus"
    BUS_NAME = "org.freedesktop.Notifications"
    PATH = "/org/freedesktop/Notifications"
    INTERFACE = "org.freedesktop.Notifications"

    def __init__(self, router: Any, *, icon: Path | None, clickable: bool) -> None:
        from jeepney import DBusAddress, MatchRule

        self._router = router
        self._address = DBusAddress(self.PATH, bus_name=self.BUS_NAME, interface=self.INTERFACE)
        self._icon = str(icon) if icon else ""
        self.clickable = clickable
        self._lock = threading.Lock()
        self._clicks: dict[int, OnClick] = {}
        self._ids_by_tag: dict[str, int] = {}
        self._signals: queue.Queue[Any] = queue.Queue(maxsize=256)
        rule = MatchRule(type="signal", interface=self.INTERFACE, path=self.PATH)
        self._filter = router.filter(rule, queue=self._signals)
        self._listener = threading.Thread(target=self._listen, name="notifications", daemon=True)
        self._stopping = False
        self._listener.start()

    @classmethod
    def connect(cls, icon: Path | None = None) -> DBusNotifier | None:
        """The service on the session bus, or None when there is no bus or no service."""
        try:
            from jeepney import DBusAddress, new_method_call
            from jeepney.bus_messages import MatchRule, message_bus
            from jeepney.io.threading import DBusRouter, open_dbus_connection
        except ImportError:
            return None
        try:
            connection = open_dbus_connection(bus="SESSION")
        except Exception as error:  # no address, refused, authentication failed: all mean "none"
            logger.info("no D-Bus session bus (%s)", error)
            return None
        router = DBusRouter(connection)
        address = DBusAddress(cls.PATH, bus_name=cls.BUS_NAME, interface=cls.INTERFACE)
        try:
            reply = router.send_and_get_reply(
                new_method_call(address, "GetCapabilities"), timeout=NOTIFY_TIMEOUT
            )
            capabilities = reply.body[0] if reply.body else []
            if reply.header.message_type.name != "method_return":
                raise RuntimeError(str(reply.body))
            rule = MatchRule(type="signal", interface=cls.INTERFACE, path=cls.PATH)
            router.send_and_get_reply(message_bus.AddMatch(rule), timeout=NOTIFY_TIMEOUT)
        except Exception as error:
            logger.info("no notification service on the session bus (%s)", error)
            router.close()
            connection.close()
            return None
        return cls(router, icon=icon, clickable="actions" in capabilities)

    def show(self, notification: Notification, on_click: OnClick) -> None:
        from jeepney import new_method_call

        with self._lock:
            replaces = self._ids_by_tag.get(notification.tag, 0)
        actions = ["default", "Ouvrir"] if self.clickable else []
        hints = {"category": ("s", "im.received"), "desktop-entry": ("s", "lien-desktop")}
        message = new_method_call(
            self._address,
            "Notify",
            "susssasa{sv}i",
            (APP_NAME, replaces, self._icon, notification.summary, notification.body, actions, hints, -1),
        )
        try:
            reply = self._router.send_and_get_reply(message, timeout=NOTIFY_TIMEOUT)
        except Exception as error:
            logger.warning("the notification service did not answer: %s", error)
            return
        if reply.header.message_type.name != "method_return" or not reply.body:
            logger.warning("the notification service refused a notification: %s", reply.body)
            return
        notification_id = int(reply.body[0])
        with self._lock:
            self._clicks.pop(replaces, None)
            self._clicks[notification_id] = on_click
            self._ids_by_tag[notification.tag] = notification_id

    def _listen(self) -> None:
        from jeepney import HeaderFields

        while not self._stopping:
            message = self._signals.get()
            if message is None:
                return
            member = message.header.fields.get(HeaderFields.member)
            if member == "ActionInvoked":
                notification_id, action = message.body
                with self._lock:
                    on_click = self._clicks.get(int(notification_id))
                if on_click is not None and action == "default":
                    try:
                        on_click()
                    except Exception:
                        logger.exception("opening a notification failed")
            elif member == "NotificationClosed":
                notification_id = int(message.body[0])
                with self._lock:
                    self._clicks.pop(notification_id, None)
                    for tag, known in list(self._ids_by_tag.items()):
                        if known == notification_id:
                            del self._ids_by_tag[tag]

    def close(self) -> None:
        self._stopping = True
        with contextlib.suppress(queue.Full):
            self._signals.put_nowait(None)
        self._listener.join(timeout=5)
        self._filter.close()
        connection = self._router.conn
        self._router.close()
        connection.close()


def system_notifier(icon: Path | None = None) -> Notifier:
    """The best notifier this session has; never fails."""
    notifier: Notifier | None = DBusNotifier.connect(icon)
    if notifier is None:
        notifier = NotifySendNotifier.find(icon)
    if notifier is None:
        logger.info("no notification service: new messages show only in the window")
        notifier = NullNotifier()
    return notifier

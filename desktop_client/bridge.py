"""What the page may ask of the desktop side, each call checked; and what Python tells the page.

The web client calls these through ``window.pywebview.api`` (``web_client/app/desktop.js``);
`page_api.PageApi` exposes exactly the public methods here, nothing else. The page is
the server's code, so every argument is checked as untrusted input: types, lengths,
usernames. Python reaches back into the page only through ``window.lienDesktop``
(``activate(key)`` after a click on a notification).

The window title carries the unread count and the connection: ``(2) Lien — hors ligne``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from desktop_client.notifier import Notification, Notifier
from desktop_client.passphrases import PassphraseStore

logger = logging.getLogger(__name__)

BASE_TITLE = "Lien"
CONNECTION_STATES = frozenset({"connecting", "ready", "offline", "replaced", "signed-out", "closed"})
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,31}")
"""The web client's rule (web_client/app/ui/auth.js)."""
MAX_TEXT = 200
MAX_KEY = 64
MAX_PASSPHRASE = 1024
MAX_UNREAD = 1_000_000


class WindowControl(Protocol):
    """What the bridge does to the window; `native_window.NativeWindow` in the application."""

    def set_title(self, title: str) -> None: ...

    def bring_forward(self) -> None: ...

    def run_script(self, script: str) -> None: ...


class BridgeArgumentError(ValueError):
    """The page sent something it should not have: a bug or a hostile page."""


def window_title(unread: int, offline: bool) -> str:
    title = f"({unread}) {BASE_TITLE}" if unread > 0 else BASE_TITLE
    return f"{title} — hors ligne" if offline else title


class EventLog:
    """JSON lines of what the desktop did natively (``LIEN_DESKTOP_EVENT_LOG``); off when no path."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> None:
        if self.path is None:
            return
        line = json.dumps({"event": event, "at": time.time(), **fields}, ensure_ascii=False)
        with self._lock, open(self.path, "a", encoding="utf-8") as log:
            log.write(line + "\n")


def _text(value: object, name: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise BridgeArgumentError(f"{name}: a string of at most {limit} characters")
    return value


def _username(value: object) -> str:
    if not isinstance(value, str) or not USERNAME.fullmatch(value):
        raise BridgeArgumentError("username: not a Lien username")
    return value


class Bridge:
    """The desktop side of the page's calls. Thread-safe: pywebview runs each call on its own thread."""

    def __init__(
        self,
        *,
        window: WindowControl,
        notifier: Notifier,
        passphrases: PassphraseStore,
        event_log: EventLog,
        on_retry: Callable[[], None] = lambda: None,
    ) -> None:
        self._window = window
        self._notifier = notifier
        self._passphrases = passphrases
        self._events = event_log
        self._on_retry = on_retry
        self._lock = threading.Lock()
        self._unread = 0
        self._offline = False
        self._title = BASE_TITLE

    # --- called by the page ------------------------------------------------------

    def notify(self, summary: object, body: object, tag: object, key: object) -> bool:
        """A desktop notification; a click on it brings the window forward and opens ``key``."""
        notification = Notification(
            summary=_text(summary, "summary"), body=_text(body, "body"), tag=_text(tag, "tag")
        )
        activation = _text(key, "key", MAX_KEY)
        self._events.write(
            "notification",
            summary=notification.summary,
            body=notification.body,
            tag=notification.tag,
            notifier=self._notifier.name,
        )
        self._notifier.show(notification, lambda: self.activate(activation))
        return True

    def set_unread(self, count: object) -> str:
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_UNREAD:
            raise BridgeArgumentError("count: a whole number of unread messages")
        with self._lock:
            self._unread = count
        return self._update_title()

    def connection_state(self, state: object) -> str:
        if state not in CONNECTION_STATES:
            raise BridgeArgumentError("state: not a connection state")
        with self._lock:
            if state != "connecting":  # the retries go offline → connecting → offline: still offline
                self._offline = state == "offline"
        return self._update_title()

    def keyring_status(self) -> dict[str, object]:
        """Whether the page may offer to remember the password (a real keyring exists)."""
        available = self._passphrases.available()
        return {"available": available, "backend": self._passphrases.backend_name() if available else None}

    def stored_passphrase(self, username: object) -> str | None:
        return self._passphrases.get(_username(username))

    def remember_passphrase(self, username: object, passphrase: object) -> bool:
        """Only after the user ticked "remember" (the page asks nothing else of the keyring)."""
        name = _username(username)
        secret = _text(passphrase, "passphrase", MAX_PASSPHRASE)
        if not secret:
            raise BridgeArgumentError("passphrase: empty")
        stored = self._passphrases.set(name, secret)
        self._events.write("passphrase", action="remember", username=name, stored=stored)
        return stored

    def forget_passphrase(self, username: object) -> bool:
        name = _username(username)
        forgotten = self._passphrases.delete(name)
        self._events.write("passphrase", action="forget", username=name, forgotten=forgotten)
        return forgotten

    def retry_now(self) -> None:
        """From the offline page's button: try the server now."""
        self._events.write("retry")
        self._on_retry()

    # --- called from Python ------------------------------------------------------

    def activate(self, key: str) -> None:
        """A notification was clicked: the window comes forward, the page opens what it named."""
        self._events.write("forward", reason="notification", key=key)
        self._window.bring_forward()
        self._window.run_script(f"window.lienDesktop && window.lienDesktop.activate({json.dumps(key)})")

    def bring_forward(self, reason: str) -> None:
        """Another launch, or anything else that should show the window."""
        self._events.write("forward", reason=reason)
        self._window.bring_forward()

    def _update_title(self) -> str:
        with self._lock:  # held while setting it, so two updates cannot land out of order
            title = window_title(self._unread, self._offline)
            if title != self._title:
                self._title = title
                self._window.set_title(title)
                self._events.write("title", title=title)
            return title

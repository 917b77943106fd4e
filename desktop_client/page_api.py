"""The object handed to pywebview as ``js_api``: the bridge's page calls, and nothing behind them.

pywebview resolves a call from the page by walking attributes from this object with
``getattr`` — any dotted name, underscores included. Handing it the `Bridge` itself
would let a page reach ``_passphrases._backend.get_password(...)``: every secret in
the user's keyring. So the page gets a `PageApi`: its only attributes are the
methods listed in `PAGE_CALLS`, each a plain forwarding function whose closure (not
an attribute) holds the bridge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from desktop_client.bridge import Bridge

PAGE_CALLS = (
    "notify",
    "set_unread",
    "connection_state",
    "keyring_status",
    "stored_passphrase",
    "remember_passphrase",
    "forget_passphrase",
    "retry_now",
)


def make_page_api(bridge: Bridge) -> object:
    """A `PageApi` forwarding `PAGE_CALLS` to ``bridge``."""
    calls: dict[str, Callable[..., Any]] = {name: getattr(bridge, name) for name in PAGE_CALLS}
    allowed = frozenset(PAGE_CALLS)

    class PageApi:
        """Only `PAGE_CALLS`; every other attribute lookup fails."""

        __slots__ = ()

        def notify(self, summary: object, body: object, tag: object, key: object) -> bool:
            return bool(calls["notify"](summary, body, tag, key))

        def set_unread(self, count: object) -> str:
            return str(calls["set_unread"](count))

        def connection_state(self, state: object) -> str:
            return str(calls["connection_state"](state))

        def keyring_status(self) -> dict[str, object]:
            return dict(calls["keyring_status"]())

        def stored_passphrase(self, username: object) -> str | None:
            stored = calls["stored_passphrase"](username)
            return stored if isinstance(stored, str) else None

        def remember_passphrase(self, username: object, passphrase: object) -> bool:
            return bool(calls["remember_passphrase"](username, passphrase))

        def forget_passphrase(self, username: object) -> bool:
            return bool(calls["forget_passphrase"](username))

        def retry_now(self) -> None:
            calls["retry_now"]()

        def __getattribute__(self, name: str) -> Any:
            if name not in allowed:
                raise AttributeError(name)
            return object.__getattribute__(self, name)

        def __dir__(self) -> list[str]:
            return sorted(allowed)

    return PageApi()

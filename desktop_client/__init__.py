"""Lien's desktop application: the web client in a native window (pywebview).

The page is the web client served by the Lien server; this package adds what a
browser tab cannot do: its own window that remembers where it was, native desktop
notifications, the unread count in the window title, one instance at a time, the
keystore password in the operating system's keyring when the user agrees, and a
local page while the server cannot be reached.

Modules, one job each:

| module | what it holds |
| --- | --- |
| `settings` | the frozen settings of one run, from the command line and the environment |
| `config` | what is remembered between runs (server, window geometry), a JSON file |
| `single_instance` | one running window per user: a lock and a local socket in the runtime dir |
| `notifier` | desktop notifications: D-Bus `org.freedesktop.Notifications`, `notify-send`, or none |
| `passphrases` | the keystore password in the OS keyring (`keyring`), only when the user agreed |
| `bridge` | what the page may ask of Python, checked; the window title and the event log |
| `page_api` | the object handed to pywebview as `js_api`: exactly the bridge's calls, nothing behind them |
| `loader` | loading the server's page, and the local fallback page while it cannot be reached |
| `native_window` | pywebview glue: the window, its geometry, bringing it forward |
| `app` | `lien-desktop`: wiring it all together |
"""

from __future__ import annotations

APP_NAME = "lien-desktop"
"""The name of the application's folders (config, data, runtime) and of its keyring entries."""

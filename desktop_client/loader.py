"""Loading the server's page, and a local page while the server cannot be reached.

The window opens on the local page (``resources/offline.html``: "Connexion à …").
`PageLoader.run` asks the server for its page; once it answers, the window loads
it. Until then the local page says the server cannot be reached and why, counts
down to the next try (capped backoff), and has a "Réessayer maintenant" button
(the bridge's ``retry_now``). Should a load of the server's page still end on
something that is not Lien (the server went away between the check and the load),
`page_loaded` puts the local page back and the tries resume.

Once Lien's page runs, it reconnects by itself; ``web_client/app/desktop.js`` shows
a banner while it is offline.
"""

from __future__ import annotations

import html
import json
import logging
import threading
from collections.abc import Callable, Sequence
from importlib import resources
from string import Template
from typing import Protocol

import httpx

logger = logging.getLogger(__name__)

RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0)
"""Seconds between tries; the last one repeats."""
PROBE_TIMEOUT = 5.0
IS_LIEN_SCRIPT = "Boolean(document.getElementById('app') && document.querySelector('script[type=importmap]'))"
"""True on the web client's page (web_client/index.html), false on a browser error page."""


class PageWindow(Protocol):
    def load_url(self, url: str) -> None: ...

    def load_html(self, content: str) -> None: ...

    def run_script(self, script: str) -> None: ...


Probe = Callable[[str], str | None]


def probe_server(url: str) -> str | None:
    """None when the server's page answers; otherwise why not, in plain French."""
    try:
        response = httpx.get(url + "/", timeout=PROBE_TIMEOUT)
    except httpx.TimeoutException:
        return "Le serveur ne répond pas."
    except httpx.HTTPError:
        return "Pas de réseau, ou le serveur est arrêté."
    if response.status_code >= 500:
        return f"Le serveur est en difficulté (erreur {response.status_code})."
    if response.status_code != 200:
        return f"Le serveur a répondu par une erreur ({response.status_code})."
    return None


def offline_page(server_url: str, state: str, reason: str = "") -> str:
    """The local page; ``state`` is ``connecting`` or ``offline``."""
    page = resources.files("desktop_client").joinpath("resources/offline.html")
    template = Template(page.read_text("utf-8"))
    return template.substitute(
        server=html.escape(server_url), state=html.escape(state), reason=html.escape(reason)
    )


class PageLoader:
    """Gets the server's page into the window, with the local page while it cannot."""

    def __init__(
        self,
        server_url: str,
        window: PageWindow,
        *,
        probe: Probe = probe_server,
        delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.server_url = server_url
        self._window = window
        self._probe = probe
        self._delays = tuple(delays)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._expecting_server = False
        self._thread: threading.Thread | None = None
        self.attempts = 0

    def start(self, reason: str | None = None) -> None:
        """Try in a background thread (call once the window exists); ``reason``: why the last load failed."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                self._wake.set()
                return
            self._thread = threading.Thread(target=self.run, args=(reason,), name="page-loader", daemon=True)
            self._thread.start()

    def run(self, reason: str | None = None) -> None:
        """Try until the server answers (or `stop`), then load its page.

        With a ``reason`` (the page just failed to load), show the local page and wait
        before the first try, so a server that answers with something else than Lien
        is not asked again and again.
        """
        failures = 0
        while not self._stopping.is_set():
            if reason is None:
                self.attempts += 1
                reason = self._probe(self.server_url)
                if reason is None:
                    with self._lock:
                        self._expecting_server = True
                    logger.info("loading %s", self.server_url)
                    self._window.load_url(self.server_url + "/")
                    return
            delay = self._delays[min(failures, len(self._delays) - 1)]
            failures += 1
            logger.info("%s unreachable (%s); next try in %.0f s", self.server_url, reason, delay)
            if failures == 1:
                self._window.load_html(offline_page(self.server_url, "offline", reason))
            self._window.run_script(
                f"window.lienOffline && window.lienOffline.retrying({int(delay)}, {json.dumps(reason)})"
            )
            self._wake.wait(delay)
            self._wake.clear()
            reason = None

    def retry_now(self) -> None:
        self._wake.set()

    def page_loaded(self, is_lien: bool) -> None:
        """After each load: a failed load of the server's page brings the local page back."""
        with self._lock:
            expecting = self._expecting_server
            if expecting:
                self._expecting_server = False
        if expecting and not is_lien:
            logger.warning("%s did not load: showing the offline page", self.server_url)
            self.start("La page de Lien n'a pas pu être chargée.")

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

"""desktop_client.loader: the server's page once it answers, the local page until then."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from desktop_client.loader import PageLoader, offline_page, probe_server
from tests.live import free_port

SERVER = "http://127.0.0.1:8000"
WAIT = 10.0


class FakePageWindow:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.changed = threading.Condition()

    def _record(self, kind: str, value: str) -> None:
        with self.changed:
            self.calls.append((kind, value))
            self.changed.notify_all()

    def load_url(self, url: str) -> None:
        self._record("url", url)

    def load_html(self, content: str) -> None:
        self._record("html", content)

    def run_script(self, script: str) -> None:
        self._record("script", script)

    def wait_for(self, kind: str, count: int = 1) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.kinds().count(kind) >= count, WAIT), self.calls

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.calls]


class Probe:
    """Answers from a list of reasons (None: the server answers), then keeps the last."""

    def __init__(self, *answers: str | None) -> None:
        self.answers = list(answers)
        self.asked = 0

    def __call__(self, url: str) -> str | None:
        assert url == SERVER
        self.asked += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def test_a_reachable_server_is_loaded_at_once() -> None:
    window = FakePageWindow()
    PageLoader(SERVER, window, probe=Probe(None)).run()
    assert window.calls == [("url", SERVER + "/")]


def test_an_unreachable_server_shows_the_local_page_and_retries_until_it_answers() -> None:
    window = FakePageWindow()
    probe = Probe("Le serveur ne répond pas.", "Le serveur ne répond pas.", None)
    PageLoader(SERVER, window, probe=probe, delays=(0.0,)).run()
    assert window.kinds() == ["html", "script", "script", "url"]
    assert "Le serveur ne répond pas." in window.calls[0][1]
    reason = json.dumps("Le serveur ne répond pas.")
    assert window.calls[1][1] == f"window.lienOffline && window.lienOffline.retrying(0, {reason})"
    assert probe.asked == 3


def test_retry_now_does_not_wait_for_the_next_try() -> None:
    window = FakePageWindow()
    loader = PageLoader(SERVER, window, probe=Probe("Le serveur ne répond pas.", None), delays=(3600.0,))
    loader.start()
    window.wait_for("script")
    loader.retry_now()  # the offline page's button
    window.wait_for("url")
    loader.stop()


def test_a_failed_load_of_the_server_page_brings_the_local_page_back() -> None:
    window = FakePageWindow()
    loader = PageLoader(SERVER, window, probe=Probe(None), delays=(3600.0,))
    loader.run()
    loader.page_loaded(is_lien=True)
    assert window.kinds() == ["url"]
    loader.run()
    loader.page_loaded(is_lien=False)  # e.g. the browser's own error page
    window.wait_for("script")
    assert window.kinds() == ["url", "url", "html", "script"]
    assert "pas pu être chargée" in window.calls[2][1]
    loader.stop()


def test_the_local_page_escapes_what_it_shows() -> None:
    page = offline_page("http://<script>x</script>", "offline", "<b>raison</b>")
    assert "<script>x</script>" not in page
    assert "&lt;script&gt;" in page
    assert "&lt;b&gt;raison" in page
    assert 'data-state="offline"' in page


class Handler(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(WAIT)


def test_the_probe_says_why_a_server_cannot_be_used(http_server: ThreadingHTTPServer) -> None:
    url = f"http://127.0.0.1:{http_server.server_address[1]}"
    Handler.status = 200
    assert probe_server(url) is None
    Handler.status = 503
    assert probe_server(url) == "Le serveur est en difficulté (erreur 503)."
    Handler.status = 404
    assert probe_server(url) == "Le serveur a répondu par une erreur (404)."
    Handler.status = 200
    assert probe_server(f"http://127.0.0.1:{free_port()}") == "Pas de réseau, ou le serveur est arrêté."

"""The desktop application under test: a real window on a private Xvfb, driven over DevTools.

``lien-desktop`` runs as a subprocess (``python -m desktop_client``) on its own X
display, with its own config, data and runtime folders. QtWebEngine's remote
debugging port (``QTWEBENGINE_REMOTE_DEBUGGING``, on 127.0.0.1 only) lets the test
read and drive the page the way a person would: fill fields, click buttons, read
text. (Playwright's ``connect_over_cdp`` needs browser-context calls QtWebEngine
does not have, so `DevToolsPage` speaks the few DevTools calls it needs itself.)

`NotificationService` is a small freedesktop notification service on a private
``dbus-daemon`` (the ``session_bus`` fixture): it records Notify calls and can click
a notification (``ActionInvoked``), as a desktop's notification daemon would.

Every process here is stopped by its own pid; every wait is bounded and waits for a
condition.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.live import free_port

REPO = Path(__file__).resolve().parent.parent
SCREEN = "1280x800x24"
WAIT = 30.0
"""Every wait in these tests: generous, since a failing one fails the test instead of hanging it."""


def require_desktop_tools() -> None:
    """Skip without Xvfb or the desktop extras, unless ``LIEN_REQUIRE_DESKTOP`` (CI) says fail."""
    missing = [tool for tool in ("Xvfb",) if shutil.which(tool) is None]
    try:
        import webview  # noqa: F401
        from PyQt6 import QtWebEngineWidgets  # noqa: F401
    except ImportError as error:
        missing.append(f"the desktop extras ({error.name})")
    if missing:
        message = "desktop tests need " + ", ".join(missing)
        if os.environ.get("LIEN_REQUIRE_DESKTOP"):
            pytest.fail(message)
        pytest.skip(message)


class Xvfb:
    """A private X server; its display number is chosen by Xvfb itself (``-displayfd``)."""

    def __init__(self, log_path: Path) -> None:
        read_end, write_end = os.pipe()
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["Xvfb", "-displayfd", str(write_end), "-screen", "0", SCREEN, "-nolisten", "tcp"],
                pass_fds=(write_end,),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            number = pipe.readline().strip()  # Xvfb writes it once ready to accept clients
        if not number:
            self.stop()
            raise RuntimeError(f"Xvfb did not start: {log_path.read_text(errors='replace')}")
        self.display = f":{number}"

    def capture(self) -> bytes:
        """The screen as PNG, trimmed to the window (ImageMagick's ``import``), without dates."""
        return subprocess.run(
            ["import", "-display", self.display, "-window", "root", "-trim", "+repage", "-strip", "png:-"],
            check=True,
            timeout=30,
            capture_output=True,
        ).stdout

    def screenshot(self, path: Path, timeout: float = WAIT) -> None:
        """Save the screen once two captures in a row agree (the window has finished painting)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        previous, current = None, self.capture()
        while current != previous and time.monotonic() < deadline:
            previous, current = current, self.capture()
        path.write_bytes(current)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


class DesktopApp:
    """One ``lien-desktop`` process on the given display, with folders under ``home``."""

    def __init__(self, home: Path, display: str, *, extra_env: dict[str, str] | None = None) -> None:
        self.home = home
        self.display = display
        self.devtools_port = free_port()
        self.event_log = home / "events.jsonl"
        # Unix socket paths are limited to ~100 bytes: the runtime folder gets a short name.
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="lien-rt-"))
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = home / "lien-desktop.log"

    @property
    def config_file(self) -> Path:
        return self.home / "config" / "lien-desktop" / "config.json"

    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DBUS_SESSION_BUS_ADDRESS", "QTWEBENGINE_REMOTE_DEBUGGING")
        }
        env.update(
            {
                "DISPLAY": self.display,
                "QT_QPA_PLATFORM": "xcb",
                "QTWEBENGINE_CHROMIUM_FLAGS": "--no-sandbox --disable-gpu",
                "QTWEBENGINE_REMOTE_DEBUGGING": f"127.0.0.1:{self.devtools_port}",
                "XDG_CONFIG_HOME": str(self.home / "config"),
                "XDG_DATA_HOME": str(self.home / "data"),
                "XDG_RUNTIME_DIR": str(self.runtime_dir),
                "LIEN_DESKTOP_EVENT_LOG": str(self.event_log),
                "PYTHONPATH": str(REPO),
            }
        )
        env.update(self.extra_env)
        return env

    def launch(self, *args: str) -> subprocess.Popen[bytes]:
        """Start ``python -m desktop_client ARGS``; the caller owns the process."""
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "desktop_client", *args],
                cwd=REPO,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def start(self, *args: str) -> DesktopApp:
        self.process = self.launch(*args)
        return self

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        if not self.event_log.exists():
            return []
        lines = self.event_log.read_text(encoding="utf-8").splitlines()
        events = [json.loads(line) for line in lines if line.strip()]
        return [event for event in events if kind is None or event["event"] == kind]

    async def wait_for_event(self, kind: str, timeout: float = WAIT, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events(kind):
                if all(event.get(name) == value for name, value in fields.items()):
                    return event
            self.assert_running()
            await asyncio.sleep(0.1)
        raise AssertionError(f"no {kind} event with {fields}; events: {self.events()}\n{self.log()}")

    async def page(self, timeout: float = WAIT) -> DevToolsPage:
        return await DevToolsPage.attach(self, timeout)

    def assert_running(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"lien-desktop exited with {self.process.returncode}:\n{self.log()}")

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (the window closes as with its close button); SIGKILL if it hangs."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class DevToolsPage:
    """The window's page over the DevTools protocol: evaluate, wait for, type, click."""

    def __init__(self, app: DesktopApp, connection: Any) -> None:
        self.app = app
        self.connection = connection
        self.ids = itertools.count(1)

    @classmethod
    async def attach(cls, app: DesktopApp, timeout: float) -> DevToolsPage:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{app.devtools_port}/json/list"
        async with httpx.AsyncClient() as http:
            while True:
                app.assert_running()
                try:
                    targets = (await http.get(url, timeout=2)).json()
                    pages = [target for target in targets if target.get("type") == "page"]
                    if pages:
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"the window's page never appeared:\n{app.log()}")
                await asyncio.sleep(0.1)
        connection = await websockets.connect(pages[0]["webSocketDebuggerUrl"], max_size=None)
        return cls(app, connection)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        await self.connection.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await asyncio.wait_for(self.connection.recv(), WAIT))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` (promises awaited); a page exception fails the test."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = WAIT) -> Any:
        """Poll ``expression`` until it is truthy in JavaScript; its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = await self.evaluate(expression)
            except AssertionError:
                value = None  # between two documents: the context is being replaced
            if value not in (None, False, "", 0):  # a DOM node comes back as {}: found
                return value
            self.app.assert_running()
            if time.monotonic() > deadline:
                raise AssertionError(f"never true: {expression}\n{self.app.log()[-4000:]}")
            await asyncio.sleep(0.1)

    async def fill(self, selector: str, text: str) -> None:
        """Focus the field, clear it, and type ``text`` (DevTools ``Input.insertText``)."""
        found = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return false; e.focus(); e.select?.(); return true; })()"
        )
        assert found, f"no field {selector}"
        await self.send("Input.insertText", text=text)

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        box = await self.wait_for(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e || e.disabled) return null; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return r.width ? {x: r.x + r.width / 2, y: r.y + r.height / 2} : null; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left", clickCount=1
            )

    async def next_frame(self) -> None:
        """Once the page has painted what it shows now (two animation frames)."""
        await self.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")

    async def close(self) -> None:
        await self.connection.close()


@pytest.fixture
def xvfb(tmp_path: Path) -> Iterator[Xvfb]:
    require_desktop_tools()
    server = Xvfb(tmp_path / "xvfb.log")
    yield server
    server.stop()


NOTIFY_PATH = "/org/freedesktop/Notifications"
NOTIFY_INTERFACE = "org.freedesktop.Notifications"


class NotificationService:
    """Answers GetCapabilities, GetServerInformation and Notify; can emit ActionInvoked."""

    def __init__(self, address: str, capabilities: list[str]) -> None:
        from jeepney.bus_messages import message_bus
        from jeepney.io.threading import open_dbus_connection

        self.capabilities = capabilities
        self.calls: list[tuple[Any, ...]] = []
        self.notified = threading.Event()
        self.connection = open_dbus_connection(bus=address)
        self.connection.send(message_bus.RequestName(NOTIFY_INTERFACE))
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
            if (
                header.message_type != MessageType.method_call
                or header.fields.get(HeaderFields.path) != NOTIFY_PATH
            ):
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
            DBusAddress(NOTIFY_PATH, interface=NOTIFY_INTERFACE),
            "ActionInvoked",
            "us",
            (notification_id, "default"),
        )
        self.connection.send(signal_message)

    def wait_for_calls(self, count: int) -> None:
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

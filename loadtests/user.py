"""The Locust side: devices on a gevent-friendly WebSocket, and the user class the scenarios extend.

A :class:`GeventDevice` wraps :class:`loadtests.core.BenchDevice` (the
protocol core: keys, sessions, frames) around a ``websocket-client``
connection and a reader greenlet. Every message it decrypts is reported to
Locust with ``events.request.fire`` under the name the scenario gave the
device, with its end-to-end latency as the response time, so Locust's
statistics are delivery latencies. An error frame, a message that does not
open or an expected delivery that never comes is a failure.

:class:`LienUser` is what the scenario files extend: it owns one or more
devices (a conversation), spreads them over the nodes named by ``--nodes``
(default: ``--host``), and cleans up when the user stops.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import gevent
import httpx
import websocket
from gevent.event import Event
from gevent.queue import Empty, Queue
from locust import User, events

from lien.protocol import api as bodies
from lien.protocol import frames, limits
from loadtests import api
from loadtests.core import (
    Accepted,
    BenchDevice,
    Directory,
    Failed,
    NeedDevices,
    Ready,
    ReceiptArrived,
    Received,
    RetryLater,
)

logging.getLogger("httpx").setLevel(logging.WARNING)

REQUEST_TYPE = "deliver"
_directory = Directory()
"""Public identities learnt by the devices of this process (the server's device lists)."""
_names = itertools.count(1)


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("Lien")
    group.add_argument("--nodes", default="", help="comma-separated node URLs (default: --host)")
    group.add_argument("--team-size", default="8-12", help="care-team group sizes, e.g. 8-12")
    group.add_argument("--backlog-size", type=int, default=300, help="messages waiting for an offline device")
    group.add_argument("--storm-period", type=float, default=20.0, help="seconds between reconnect storms")
    group.add_argument("--storm-burst", type=int, default=20, help="messages sent while devices are away")
    group.add_argument("--expect-timeout", type=float, default=30.0, help="seconds to wait for a delivery")


def report(name: str, response_time_ms: float, *, length: int = 0, error: str | None = None) -> None:
    events.request.fire(
        request_type=REQUEST_TYPE,
        name=name,
        response_time=response_time_ms,
        response_length=length,
        exception=None if error is None else RuntimeError(error),
        context={},
    )


class GeventDevice:
    """One device of a user: registration, key claims and a socket with a reader greenlet."""

    def __init__(self, base_url: str, username: str) -> None:
        self.base_url = base_url
        self.core = BenchDevice(username, directory=_directory)
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.ws: websocket.WebSocket | None = None
        self.reader: gevent.Greenlet | None = None
        self.ready = Event()
        self.inbox: Queue[Received | ReceiptArrived] = Queue()
        self.delivery_name = "session set-up"
        """Locust name under which this device reports what it receives."""
        self.unaccepted = 0
        self.backlog: collections.deque[bytes] = collections.deque()
        """Sends waiting while ``MAX_SENDS_IN_FLIGHT`` await ``accepted`` (as the SDK queues them)."""
        self.all_accepted = Event()
        self.all_accepted.set()

    @property
    def username(self) -> str:
        return self.core.username

    # --- set-up ---------------------------------------------------------------------

    def register(self) -> GeventDevice:
        self.core.registered(api.run_sync(self.http, api.register(self.core.register_request())))
        return self

    def claim(self, peer: str) -> None:
        """Open sessions with every device of ``peer`` (``POST /v1/users/{peer}/keys/claim``)."""
        self.core.learn_bundles(api.run_sync(self.http, api.claim_bundles(self.core.token, peer)))

    def create_group(self, name: str, members: list[str]) -> bodies.GroupInfo:
        return api.run_sync(self.http, api.create_group(self.core.token, name, members))

    # --- the socket -------------------------------------------------------------------

    def connect(self) -> float:
        """Open the socket and authenticate; returns the seconds until ``ready``."""
        started = time.monotonic()
        self.ready.clear()
        url = self.base_url.replace("http", "ws", 1) + "/ws"
        self.ws = websocket.create_connection(url, timeout=30, enable_multithread=True)
        self.ws.settimeout(None)
        self.ws.send(self.core.auth_frame().decode())
        self.reader = gevent.spawn(self._read, self.ws)
        if not self.ready.wait(30):
            raise TimeoutError(f"{self.username}: no ready within 30 s")
        return time.monotonic() - started

    def disconnect(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            ack = self.core.ack_frame()
            if ack is not None:
                with contextlib.suppress(websocket.WebSocketException):
                    ws.send(ack.decode())
            ws.close()
        if self.reader is not None:
            self.reader.kill(block=True, timeout=5)
            self.reader = None

    def close(self) -> None:
        self.disconnect()
        self.http.close()

    def _read(self, ws: websocket.WebSocket) -> None:
        while True:
            try:
                data = ws.recv()
            except (websocket.WebSocketException, OSError):
                if self.ws is ws:
                    report(self.delivery_name, 0, error="connection lost")
                return
            if not data:
                continue
            try:
                event = self.core.receive(data)
            except NeedDevices as need:
                self.core.learn_devices(api.run_sync(self.http, api.device_list(self.core.token, need.user)))
                event = self.core.receive(data)
            self._dispatch(event)
            ack = self.core.ack_frame(at_least=8)
            if ack is not None:
                ws.send(ack.decode())

    def _dispatch(self, event: Any) -> None:
        match event:
            case Received():
                latency_ms = (event.latency_s or 0.0) * 1000
                report(self.delivery_name, latency_ms, length=len(event.text.encode()))
                self.inbox.put(event)
            case ReceiptArrived():
                self.inbox.put(event)
            case Accepted():
                self._send_backlog()
                self.unaccepted -= 1
                if self.unaccepted <= 0:
                    self.all_accepted.set()
            case Failed():
                report(self.delivery_name, 0, error=f"{event.code}: {event.detail}")
            case Ready():
                self.ready.set()
            case RetryLater():
                gevent.spawn_later(event.after_s, self._resend, event.frame)

    # --- sending ------------------------------------------------------------------------

    def _resend(self, frame: bytes) -> None:
        if self.ws is not None:
            self.ws.send(frame.decode())

    def _send(self, frame: bytes) -> None:
        assert self.ws is not None, "connect first"
        self.unaccepted += 1
        self.all_accepted.clear()
        if self.backlog or self.core.protocol.pending_count > limits.MAX_SENDS_IN_FLIGHT:
            self.backlog.append(frame)
            return
        self.ws.send(frame.decode())

    def _send_backlog(self) -> None:
        in_flight = self.core.protocol.pending_count - len(self.backlog)
        while self.backlog and self.ws is not None and in_flight < limits.MAX_SENDS_IN_FLIGHT:
            self.ws.send(self.backlog.popleft().decode())
            in_flight += 1

    def send_text(self, to: str, text: str) -> str:
        if self.core.needs_bundles(to):
            self.claim(to)
        client_id, frame = self.core.send_text(to, text)
        self._send(frame)
        return client_id

    def send_group_text(self, group_id: str, text: str) -> str:
        client_id, frame = self.core.send_group_text(group_id, text)
        self._send(frame)
        return client_id

    def send_receipt(self, message_id: str, kind: frames.ReceiptKind) -> None:
        assert self.ws is not None, "connect first"
        self.ws.send(self.core.receipt_frame(message_id, kind).decode())

    def wait_accepted(self, timeout: float) -> bool:
        return bool(self.all_accepted.wait(timeout))

    def flush_acks(self) -> None:
        ack = self.core.ack_frame()
        if ack is not None and self.ws is not None:
            self.ws.send(ack.decode())

    # --- waiting for what arrives -----------------------------------------------------

    def expect(self, match: Callable[[Received | ReceiptArrived], bool], timeout: float) -> Any:
        """The next received event that ``match`` accepts (others are dropped); None on timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.inbox.get(timeout=left)
            except Empty:
                break
            if match(event):
                return event
        return None


class LienUser(User):
    """A conversation of devices; scenarios add behaviour (loadtests/scenarios/)."""

    abstract = True

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        options = environment.parsed_options
        nodes = getattr(options, "nodes", "") if options is not None else ""
        self.nodes = [url.strip() for url in nodes.split(",") if url.strip()] or [str(self.host)]
        self.devices: list[GeventDevice] = []
        self.run_tag = secrets.token_hex(2)

    def option(self, name: str, default: Any) -> Any:
        options = self.environment.parsed_options
        return getattr(options, name, default) if options is not None else default

    def new_device(self, role: str) -> GeventDevice:
        """A registered device; devices of one user alternate between the nodes."""
        username = f"{role}{self.run_tag}{next(_names):05d}"[:32]
        device = GeventDevice(self.nodes[len(self.devices) % len(self.nodes)], username).register()
        self.devices.append(device)
        return device

    def introduce(self, first: GeventDevice, second: GeventDevice) -> None:
        """Open a session both ways: ``first`` claims and says hello, ``second`` answers."""
        timeout = float(self.option("expect_timeout", 30.0))
        first.send_text(second.username, "bonjour")
        if second.expect(lambda e: isinstance(e, Received) and e.sender == first.username, timeout) is None:
            report("session set-up", timeout * 1000, error="hello not delivered")
            return
        second.core.adopt_sessions(first.username)
        second.send_text(first.username, "bonjour")
        if first.expect(lambda e: isinstance(e, Received) and e.sender == second.username, timeout) is None:
            report("session set-up", timeout * 1000, error="answer not delivered")

    def expect_message(self, device: GeventDevice, sender: GeventDevice) -> Received | None:
        """Wait for a message from ``sender``; a failure is reported if none comes in time."""
        timeout = float(self.option("expect_timeout", 30.0))
        found = device.expect(lambda e: isinstance(e, Received) and e.sender == sender.username, timeout)
        if found is None:
            report(device.delivery_name, timeout * 1000, error="expected message not delivered")
        return found  # type: ignore[no-any-return]

    def on_stop(self) -> None:
        for device in self.devices:
            device.close()

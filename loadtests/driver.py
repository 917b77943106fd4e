"""A light asyncio load generator on the same protocol core as the Locust users.

    python -m loadtests.driver --target lien --url http://127.0.0.1:8001 --url http://127.0.0.1:8002 \
        --devices 200 --phases pairs,rate,groups --duration 20 --out result.json

Locust's gevent users cost more CPU per message than the servers do, so the
throughput runs of ``make bench`` use this driver instead (the Locust
scenarios are for behaviour; see loadtests/README.md). Every message is real:
each device has its own identity keys, sessions are opened with X3DH from
claimed bundles, every copy is a signed payload under the Double Ratchet
(group messages under sender keys), and every delivery is decrypted and
verified before it counts. The same driver, with the same crypto, drives the
baseline relay (``--target baseline``), which has no key directory: bundles
are then handed from device to device inside this process.

Phases, run in order on the same devices and sockets (devices alternate
between the nodes, so most traffic crosses the broker):

* ``pairs``: closed loop, one to one. Devices are paired; each keeps
  ``--window`` messages on their way to its partner and sends the next when
  one is delivered.
* ``rate``: open loop, one to one, ``--rate`` messages per second in all,
  spread evenly over the paired devices: latency at a fixed offered load
  (``rate:250`` offers 250 per second instead).
* ``groups``: closed loop in care-team groups of ``--group-size``; each
  member keeps ``--group-window`` messages on their way to every other member.
* ``receipts:250``: as ``rate:250``, and every recipient answers each message
  with a signed ``delivered`` and a signed ``read`` receipt, as the web client
  does in an open conversation: Lien checks and records each, and returns it
  to the sender, whose arrivals are counted. The baseline relay has no
  receipts: the phase is skipped there.

A delivery's latency runs from the sender's clock before it encrypts to the
recipient's after it decrypted and verified (``loadtests/core.py``). The
result (JSON) holds per phase: deliveries per second, latency percentiles,
errors, and the CPU and memory of the processes named by ``--watch``, read
from /proc at the start and end of the measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from lien.protocol import api as bodies
from lien.protocol import frames, limits
from loadtests import api, procstat
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
from server import collector

logger = logging.getLogger("loadtests.driver")

TEXT = "Kaliémie 6,8 mmol/L chez Mme L., créatinine 180 µmol/L : merci de rappeler le laboratoire."
GROUP_TEXT = "Passage infirmier 8 h : TA 13/8, glycémie 1,45 g/L, pansement refait, douleur 2/10."
ACK_FLUSH_S = 0.02
RECEIPTS_ANSWERED: tuple[frames.ReceiptKind, ...] = ("delivered", "read")
"""What a recipient sends back for each message in a ``receipts`` phase (an open conversation)."""
LAG_PROBE_S = 0.005
SETUP_TIMEOUT_S = 120.0


def percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(
    samples: Iterable[float], points: Iterable[str] = ("p50", "p95", "p99")
) -> dict[str, float | None]:
    """Percentiles (``"p50"``, ``"p99"``…) and the maximum of samples in seconds, in milliseconds."""
    ordered = sorted(samples)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    found = {point: ms(percentile(ordered, int(point[1:]) / 100)) for point in points}
    found["max"] = ms(ordered[-1] if ordered else None)
    return found


LAG_POINTS = ("p50", "p99")
"""What the report keeps of the load generator's loop lateness."""


@dataclass
class PhaseStats:
    name: str
    measuring: bool = False
    deliveries: int = 0
    sent: int = 0
    receipts: int = 0
    """Receipts that came back to senders (``status`` frames) while measuring."""
    answer_with: tuple[frames.ReceiptKind, ...] = ()
    """Receipts every recipient sends for each message of this phase (``receipts`` phases)."""
    latencies: list[float] = field(default_factory=list)
    loop_lags: list[float] = field(default_factory=list)
    """How late the driver's own event loop woke a 5 ms sleep, while measuring (seconds)."""
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    started: float = 0.0
    ended: float = 0.0
    abandoned: int = 0
    """Messages of the phase still undelivered when the driver stopped waiting, after the window."""

    def start(self) -> None:
        self.measuring = True
        self.deliveries = self.sent = self.receipts = 0
        self.latencies = []
        self.loop_lags = []
        self.errors = collections.Counter()
        self.started = time.monotonic()

    def stop(self) -> None:
        self.measuring = False
        self.ended = time.monotonic()

    def summary(self) -> dict[str, Any]:
        elapsed = max(1e-9, self.ended - self.started)
        return {
            "phase": self.name,
            "seconds": round(elapsed, 2),
            "deliveries": self.deliveries,
            "deliveries_per_s": round(self.deliveries / elapsed, 1),
            "messages_sent": self.sent,
            "messages_per_s": round(self.sent / elapsed, 1),
            "receipts_returned": self.receipts,
            "receipts_per_s": round(self.receipts / elapsed, 1),
            "latency_ms": summary_ms(self.latencies),
            "loop_lag_ms": summary_ms(self.loop_lags, LAG_POINTS),
            "errors": dict(self.errors),
            "undelivered_after_drain": self.abandoned,
        }


class Conn:
    """One device's socket: a reader that turns frames into events, acks, and a send helper."""

    def __init__(self, run: Run, device: BenchDevice, node: int, groups: list[str]) -> None:
        self.run = run
        self.device = device
        self.node = node
        self.groups = groups
        self.ws: ClientConnection | None = None
        self.ready = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None
        self.in_flight = 0
        self.free = asyncio.Event()
        self.peer: str | None = None
        self.backlog: collections.deque[tuple[str, bytes]] = collections.deque()
        """Sends made while ``MAX_SENDS_IN_FLIGHT`` await ``accepted``: they go out as answers come."""

    async def open(self) -> None:
        url = self.run.urls[self.node].replace("http", "ws", 1) + "/ws"
        self.ws = await connect(
            url, compression=None, max_size=limits.TRANSPORT_MAX_FRAME_BYTES, ping_interval=None,
            open_timeout=30, max_queue=256,
        )  # fmt: skip
        token = self.device.token
        if self.run.target == "baseline":
            token = f"{self.device.username}:{self.device.device_id}:{','.join(self.groups)}"
            self.device.token = token
        await self.ws.send(self.device.auth_frame(), text=True)
        self.reader = asyncio.create_task(self._read())
        await asyncio.wait_for(self.ready.wait(), 30)

    async def send(self, client_id: str, frame: bytes) -> None:
        """Send now, or queue locally while the server's in-flight limit is reached (as the SDK does)."""
        assert self.ws is not None
        if self.backlog or self.device.protocol.pending_count > limits.MAX_SENDS_IN_FLIGHT:
            self.backlog.append((client_id, frame))
            return
        await self.ws.send(frame, text=True)

    def schedule_resend(self, frame: bytes) -> None:
        self.run.background.add(task := asyncio.ensure_future(self.send_again(frame)))
        task.add_done_callback(self.run.background.discard)

    async def send_again(self, frame: bytes) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.send(frame, text=True)

    def abandon_backlog(self) -> None:
        """Forget sends still waiting locally (a phase is over and will not wait for them)."""
        while self.backlog:
            self.device.protocol.forget(self.backlog.popleft()[0])

    async def _send_backlog(self) -> None:
        assert self.ws is not None
        sent_since = self.device.protocol.pending_count - len(self.backlog)
        while self.backlog and sent_since < limits.MAX_SENDS_IN_FLIGHT:
            await self.ws.send(self.backlog.popleft()[1], text=True)
            sent_since += 1

    async def _read(self) -> None:
        assert self.ws is not None
        stats = self.run
        try:
            while True:
                data = await self.ws.recv(decode=False)
                try:
                    event = self.device.receive(data)
                except NeedDevices as need:
                    await self.run.fetch_devices(self.device, need.user)
                    event = self.device.receive(data)
                if event is None:
                    continue
                if isinstance(event, Received):
                    stats.on_received(self, event)
                    for kind in stats.phase.answer_with:
                        await self.ws.send(self.device.receipt_frame(event.message_id, kind), text=True)
                elif isinstance(event, Ready):
                    self.ready.set()
                elif isinstance(event, Accepted):
                    if self.backlog:
                        await self._send_backlog()
                elif isinstance(event, ReceiptArrived):
                    stats.phase.receipts += stats.phase.measuring
                elif isinstance(event, Failed):
                    stats.on_error(event.code)
                elif isinstance(event, RetryLater):
                    stats.on_error("rate-limited (resent)")
                    asyncio.get_running_loop().call_later(event.after_s, self.schedule_resend, event.frame)
                ack = self.device.ack_frame(at_least=16)
                if ack is not None:
                    await self.ws.send(ack, text=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self.run.closing:
                logger.warning("device %s: reader stopped: %r", self.device.username, exc)
                self.run.on_error(f"reader-{type(exc).__name__}")

    async def flush_ack(self) -> None:
        ack = self.device.ack_frame(at_least=1)
        if ack is not None and self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.send(ack, text=True)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()


class Run:
    def __init__(self, arguments: argparse.Namespace) -> None:
        self.args = arguments
        self.target: str = arguments.target
        self.urls: list[str] = arguments.url
        self.directory = Directory()
        self.conns: list[Conn] = []
        self.by_name: dict[str, Conn] = {}
        self.phase = PhaseStats("setup")
        self.outstanding: dict[str, list[Any]] = {}
        self.closing = False
        self.http: list[httpx.AsyncClient] = []
        self.watch: dict[str, int] = dict(self._parse_watch(arguments.watch))
        self.sending = False
        self.background: set[asyncio.Future[None]] = set()

    @staticmethod
    def _parse_watch(items: list[str]) -> list[tuple[str, int]]:
        found = []
        for item in items:
            name, _, pid = item.partition("=")
            found.append((name, int(pid)))
        return found

    # --- events ---------------------------------------------------------------------

    def on_received(self, conn: Conn, event: Received) -> None:
        entry = self.outstanding.get(event.client_id)
        phase = self.phase
        # Only what this phase sent counts: a message abandoned by an earlier phase is not a delivery now.
        if phase.measuring and entry is not None:
            phase.deliveries += 1
            if event.latency_s is not None:
                phase.latencies.append(event.latency_s)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del self.outstanding[event.client_id]
                sender: Conn = entry[0]
                sender.in_flight -= 1
                sender.free.set()

    def on_error(self, code: str) -> None:
        self.phase.errors[code] += 1
        if not self.phase.measuring:
            logger.warning("error outside a measured window: %s", code)

    # --- set-up ---------------------------------------------------------------------

    async def fetch_devices(self, device: BenchDevice, user: str) -> None:
        client = self.http[0]
        device.learn_devices(await api.run_async(client, api.device_list(device.token, user)))

    async def setup(self) -> None:
        count = self.args.devices
        prefix = secrets.token_hex(3)
        devices = [BenchDevice(f"b{prefix}{index:05d}", directory=self.directory) for index in range(count)]
        group_size = self.args.group_size
        group_ids = [
            "G" + base64.b32encode(secrets.token_bytes(10)).decode() for _ in range(count // group_size)
        ]
        self.group_of = {i: group_ids[i // group_size] for i in range(len(group_ids) * group_size)}
        if self.target == "lien":
            self.http = [httpx.AsyncClient(base_url=url, timeout=60) for url in self.urls]
            gate = asyncio.Semaphore(4)

            async def register(index: int, device: BenchDevice) -> None:
                async with gate:
                    client = self.http[index % len(self.http)]
                    device.registered(await api.run_async(client, api.register(device.register_request())))

            await asyncio.gather(*(register(i, d) for i, d in enumerate(devices)))
        else:
            for index, device in enumerate(devices):
                device.registered(
                    bodies.SessionGrant(token="-", user=device.username, device=index + 1, expires_at=0)
                )
        for index, device in enumerate(devices):
            groups = [self.group_of[index]] if self.target == "baseline" and index in self.group_of else []
            conn = Conn(self, device, index % len(self.urls), groups)
            self.conns.append(conn)
            self.by_name[device.username] = conn
        gate = asyncio.Semaphore(50)

        async def open_one(conn: Conn) -> None:
            async with gate:
                await conn.open()

        await asyncio.gather(*(open_one(conn) for conn in self.conns))
        self._flusher = asyncio.create_task(self._flush_acks())
        self._lag_probe = asyncio.create_task(self._probe_loop_lag())
        # Sessions: the lower index opens each session and says hello; the other side answers.
        pairs = [(self.conns[i], self.conns[i + 1]) for i in range(0, count - 1, 2)]
        for first, second in pairs:
            first.peer, second.peer = second.device.username, first.device.username
        links = set(pairs)
        if "groups" in self.args.phases:
            for index in range(0, len(group_ids) * group_size, group_size):
                members = self.conns[index : index + group_size]
                links.update((a, b) for n, a in enumerate(members) for b in members[n + 1 :])
        await self._open_sessions(
            sorted(links, key=lambda link: (link[0].device.username, link[1].device.username))
        )
        if "groups" in self.args.phases and self.target == "lien":
            await self._create_groups(group_size)
        elif "groups" in self.args.phases:
            for index in range(0, len(group_ids) * group_size, group_size):
                members = self.conns[index : index + group_size]
                roster = [
                    bodies.GroupMember(user=m.device.username, role="member", joined_at=0) for m in members
                ]
                info = bodies.GroupInfo(
                    id=group_ids[index // group_size], name="bench", epoch=1, created_at=0, members=roster
                )
                for member in members:
                    member.device.join_group(info, {m.device.username: [m.device.device_id] for m in members})

    async def _claim(self, claimer: Conn, owner: Conn) -> bodies.KeyBundles:
        if self.target == "baseline":
            return owner.device.local_bundles()
        client = self.http[claimer.node]
        return await api.run_async(client, api.claim_bundles(claimer.device.token, owner.device.username))

    async def _open_sessions(self, links: list[tuple[Conn, Conn]]) -> None:
        gate = asyncio.Semaphore(8)

        async def claim(first: Conn, second: Conn) -> None:
            async with gate:
                first.device.learn_bundles(await self._claim(first, second))

        await asyncio.gather(*(claim(a, b) for a, b in links))
        await self._exchange([(a, b.device.username) for a, b in links])
        await self._exchange([(b, a.device.username) for a, b in links], answer=True)

    async def _exchange(self, sends: list[tuple[Conn, str]], *, answer: bool = False) -> None:
        """Send one hello per (sender, recipient) and wait until every one is delivered."""
        for sender, recipient in sends:
            if answer:
                sender.device.adopt_sessions(recipient)
            client_id, frame = sender.device.send_text(recipient, "bonjour")
            self.outstanding[client_id] = [sender, 1]
            sender.in_flight += 1
            await sender.send(client_id, frame)
        await self._drain(SETUP_TIMEOUT_S)

    async def _create_groups(self, group_size: int) -> None:
        for index in range(0, (len(self.conns) // group_size) * group_size, group_size):
            members = self.conns[index : index + group_size]
            owner = members[0]
            info = await api.run_async(
                self.http[owner.node],
                api.create_group(
                    owner.device.token, "équipe bench", [m.device.username for m in members[1:]]
                ),
            )
            for member in members:
                member.device.join_group(info, {m.device.username: [m.device.device_id] for m in members})

    async def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.outstanding and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a dict
            await asyncio.sleep(0.02)
        for conn in self.conns:
            conn.abandon_backlog()
        if self.outstanding:
            self.phase.abandoned = len(self.outstanding)
            if self.phase.name == "setup":
                self.on_error("undelivered")
            logger.warning("%d messages still undelivered after %.0f s", len(self.outstanding), timeout)
            for entry in self.outstanding.values():
                entry[0].in_flight -= 1
            self.outstanding.clear()
        for conn in self.conns:
            conn.in_flight = max(0, conn.in_flight)

    async def _flush_acks(self) -> None:
        while True:
            await asyncio.sleep(ACK_FLUSH_S)
            for conn in self.conns:
                await conn.flush_ack()

    async def _probe_loop_lag(self) -> None:
        """The load generator's own queueing: a late wake-up delays every send and receipt it holds."""
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            if self.phase.measuring:
                self.phase.loop_lags.append(max(0.0, loop.time() - asked - LAG_PROBE_S))

    # --- phases ---------------------------------------------------------------------

    async def _measure(
        self, name: str, body: Callable[[], Awaitable[None]], answer_with: tuple[frames.ReceiptKind, ...] = ()
    ) -> dict[str, Any]:
        self.phase = PhaseStats(name, answer_with=answer_with)
        self.sending = True
        task: asyncio.Task[None] = asyncio.ensure_future(body())
        await asyncio.sleep(self.args.warmup)
        before = {label: procstat.sample(pid) for label, pid in self.watch.items()}
        own_before = procstat.sample(os.getpid())
        self.phase.start()
        _marker("start", name)
        await asyncio.sleep(self.args.duration)
        self.phase.stop()
        _marker("stop", name)
        after = {label: procstat.sample(pid) for label, pid in self.watch.items()}
        own_after = procstat.sample(os.getpid())
        self.sending = False
        for conn in self.conns:
            conn.free.set()
        await task
        await self._drain(30)
        summary = self.phase.summary()
        if self.args.raw:
            summary["raw_latencies_s"] = [round(value, 6) for value in self.phase.latencies]
            summary["raw_loop_lags_s"] = [round(value, 6) for value in self.phase.loop_lags]
        summary["processes"] = {
            label: procstat.window(before[label], after[label], summary["seconds"]) for label in self.watch
        }
        summary["processes"]["load generator"] = procstat.window(own_before, own_after, summary["seconds"])
        summary["connections"] = collections.Counter(str(conn.node) for conn in self.conns)
        logger.info("%s: %s", name, json.dumps(summary))
        return summary

    async def _closed_loop(self, conn: Conn, window: int, send: Callable[[], Awaitable[None]]) -> None:
        while self.sending:
            while self.sending and conn.in_flight < window:
                await send()
            conn.free.clear()
            if self.sending and conn.in_flight >= window:
                await conn.free.wait()

    def _sender(
        self, conn: Conn, recipients: int, make: Callable[[], tuple[str, bytes]]
    ) -> Callable[[], Awaitable[None]]:
        async def send() -> None:
            client_id, frame = make()
            self.outstanding[client_id] = [conn, recipients]
            conn.in_flight += 1
            if self.phase.measuring:
                self.phase.sent += 1
            await conn.send(client_id, frame)

        return send

    async def pairs(self) -> dict[str, Any]:
        paired = [conn for conn in self.conns if conn.peer is not None]

        async def body() -> None:
            await asyncio.gather(
                *(
                    self._closed_loop(conn, self.args.window, self._sender(conn, 1, _text_to(conn)))
                    for conn in paired
                )
            )

        return await self._measure("pairs", body)

    async def rate(
        self, rate: float, name: str = "rate", answer_with: tuple[frames.ReceiptKind, ...] = ()
    ) -> dict[str, Any]:
        paired = [conn for conn in self.conns if conn.peer is not None]
        senders = [self._sender(conn, 1, _text_to(conn)) for conn in paired]

        async def body() -> None:
            started = time.monotonic()
            sent = 0
            turn = 0
            while self.sending:
                due = int((time.monotonic() - started) * rate) - sent
                for _ in range(due):
                    await senders[turn % len(senders)]()
                    turn += 1
                sent += max(0, due)
                await asyncio.sleep(0.002)

        summary = await self._measure(name, body, answer_with)
        summary["offered_per_s"] = rate
        return summary

    async def groups(self) -> dict[str, Any]:
        members = [conn for conn in self.conns if conn.device.group_members]
        size = self.args.group_size

        async def body() -> None:
            await asyncio.gather(
                *(
                    self._closed_loop(
                        conn, self.args.group_window, self._sender(conn, size - 1, _group_text(conn))
                    )
                    for conn in members
                )
            )

        return await self._measure("groups", body)

    async def close(self) -> None:
        self.closing = True
        if getattr(self, "_flusher", None) is not None:
            self._flusher.cancel()
        if getattr(self, "_lag_probe", None) is not None:
            self._lag_probe.cancel()
        await asyncio.gather(*(conn.close() for conn in self.conns))
        for client in self.http:
            await client.aclose()


async def _wait_for_go(phase: str) -> None:
    """With several driver processes (``make bench --driver-processes N``): start each phase together.

    Says it is ready on stdout, then waits for a line on stdin, which the
    supervising process sends once every driver is ready.
    """
    print(f"@@ready {phase}", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not line:
        raise SystemExit("the supervising process went away")


def _marker(what: str, phase: str) -> None:
    """Tell a supervising process (loadtests/bench.py) that a measured window starts or stops."""
    print(f"@@measure {what} {phase}", flush=True)


def _text_to(conn: Conn) -> Callable[[], tuple[str, bytes]]:
    peer = conn.peer
    assert peer is not None
    return lambda: conn.device.send_text(peer, TEXT)


def _group_text(conn: Conn) -> Callable[[], tuple[str, bytes]]:
    group_id = next(iter(conn.device.group_members))
    return lambda: conn.device.send_group_text(group_id, GROUP_TEXT)


async def main_async(arguments: argparse.Namespace) -> dict[str, Any]:
    run = Run(arguments)
    results: dict[str, Any] = {"target": arguments.target, "phases": []}
    try:
        started = time.monotonic()
        await run.setup()
        results["setup_s"] = round(time.monotonic() - started, 1)
        results["setup_errors"] = dict(run.phase.errors)
        for phase in arguments.phases.split(","):
            if arguments.barrier:
                await _wait_for_go(phase)
            kind, _, value = phase.partition(":")
            if kind == "receipts" and arguments.target == "baseline":
                results["phases"].append({"phase": phase, "skipped": "the relay has no receipts"})
            elif kind in ("rate", "receipts"):
                offered = float(value or arguments.rate) / arguments.rate_divisor
                answer_with = RECEIPTS_ANSWERED if kind == "receipts" else ()
                results["phases"].append(await run.rate(offered, phase, answer_with))
            elif kind in ("pairs", "groups"):
                results["phases"].append(await getattr(run, kind)())
            else:
                raise SystemExit(f"unknown phase {phase!r}")
    finally:
        await run.close()
    return results


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=["lien", "baseline"], required=True)
    parser.add_argument("--url", action="append", required=True, help="a node's base URL; repeat per node")
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--phases", default="pairs,rate,groups")
    parser.add_argument("--window", type=int, default=4, help="pairs: messages on their way per device")
    parser.add_argument("--rate", type=float, default=2000.0, help="rate: messages per second offered")
    parser.add_argument("--group-size", type=int, default=10)
    parser.add_argument("--group-window", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--watch", action="append", default=[], help="name=pid of a process to measure")
    parser.add_argument("--out", help="write the JSON result here (default: stdout)")
    parser.add_argument("--barrier", action="store_true", help="wait for a line on stdin before each phase")
    parser.add_argument(
        "--rate-divisor", type=int, default=1, help="offer 1/N of every rate (one of N driver processes)"
    )
    parser.add_argument(
        "--raw", action="store_true", help="also write every latency and loop lateness (to merge processes)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    # A full collection stops the driver for 40-70 ms: every delivery it was about to read would
    # count it as latency, whichever system it drives. The same settings as a serving node.
    collector.settle_for_serving()
    results = asyncio.run(main_async(arguments))
    text = json.dumps(results, indent=2)
    if arguments.out:
        with open(arguments.out, "w") as out:
            out.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

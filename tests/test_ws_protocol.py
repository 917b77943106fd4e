"""The WebSocket protocol against the app on a real uvicorn: delivery rules and every documented error."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from lien.protocol import frames, limits
from lien.protocol.api import MessageReceipts
from server.settings import Settings
from server.storage import messages
from tests.inprocess import bearer, frame_socket, register, serving
from tests.keys import signed_receipt


class Node:
    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self.url = url
        self.http = http

    def socket(self, token: str | None = None):  # type: ignore[no-untyped-def]
        return frame_socket(self.url, token)


@pytest.fixture
async def node(database_url: str) -> AsyncIterator[Node]:
    async with serving(Settings(database_url=database_url)) as url, httpx.AsyncClient(base_url=url) as http:
        yield Node(url, http)


async def copies_for(node: Node, token: str, *usernames: str, skip: int | None = None) -> list[frames.Copy]:
    devices: list[int] = []
    for username in usernames:
        listing = (await node.http.get(f"/v1/users/{username}/devices", headers=bearer(token))).json()
        devices += [d["device"] for d in listing["devices"] if d["device"] != skip]
    return [frames.Copy(device=d, body=f"ciphertext-for-{d}".encode()) for d in sorted(set(devices))]


async def test_auth_is_required_first(node: Node) -> None:
    async with node.socket() as ws:
        await ws.send(frames.Ping(id=1))
        error = await ws.receive()
        assert isinstance(error, frames.Error) and error.code == "not-authenticated"
        assert await ws.close_code() == 4401


async def test_wrong_token_closes_with_4401(node: Node) -> None:
    async with node.socket() as ws:
        await ws.send(frames.Auth(v=1, token="not-a-token"))
        error = await ws.receive()
        assert isinstance(error, frames.Error) and error.code == "auth-failed"
        assert await ws.close_code() == 4401


async def test_unsupported_version(node: Node) -> None:
    grant, _ = await register(node.http, "alice")
    async with node.socket() as ws:
        await ws.send(frames.Auth(v=99, token=grant.token))
        error = await ws.receive()
        assert isinstance(error, frames.Error) and error.code == "unsupported-version"
        assert await ws.close_code() == 4426


async def test_bad_frames_get_errors_and_the_connection_keeps_serving(node: Node) -> None:
    grant, _ = await register(node.http, "alice")
    async with node.socket() as ws:
        await ws.authenticate(grant.token)
        cases = [
            ("{not json", "malformed-frame"),
            ('{"type":"launch-missiles"}', "unknown-frame-type"),
            ('{"type":"send","id":"x"}', "malformed-frame"),
            ('{"type":"ack","up_to":-1}', "malformed-frame"),
            ('{"type":"ack","up_to":0,"sender":"bob"}', "malformed-frame"),
            ("[]", "malformed-frame"),
            ('"just a string"', "malformed-frame"),
            ("x" * (limits.MAX_FRAME_BYTES + 1), "frame-too-large"),
            ('{"type":"auth","v":1,"token":"again"}', "already-authenticated"),
            ('{"type":"ack","up_to":5}', "invalid-ack"),
        ]
        for raw, code in cases:
            await ws.send_raw(raw)
            error = await ws.receive_until(frames.Error)
            assert error.code == code, (raw[:40], error)
            assert "Traceback" not in error.message
        await ws.send_raw(b"\x00\x01")
        assert (await ws.receive_until(frames.Error)).code == "malformed-frame"
        await ws.send(frames.Ping(id=7))
        assert (await ws.receive_until(frames.Pong)) == frames.Pong(id=7)


async def test_send_errors_name_the_frame(node: Node) -> None:
    alice, _ = await register(node.http, "alice")
    bob, _ = await register(node.http, "bob")
    async with node.socket() as ws:
        await ws.authenticate(alice.token)
        body = frames.Copy(device=bob.device, body=b"c")
        await ws.send(frames.Send(id="m1", to="nobody", copies=[body]))
        error = await ws.receive_until(frames.Error)
        assert (error.code, error.ref) == ("unknown-user", "m1")

        await ws.send(
            frames.Send(id="m2", to="bob", copies=[frames.Copy(device=bob.device + 100, body=b"c")])
        )
        error = await ws.receive_until(frames.Error)
        assert (error.code, error.ref) == ("devices-mismatch", "m2")
        assert error.details == {"missing": [bob.device], "extra": [bob.device + 100]}

        await ws.send(frames.Send(id="m3", to="bob", copies=[body, body]))
        assert (await ws.receive_until(frames.Error)).code == "malformed-frame"

        too_big = frames.Copy(device=bob.device, body=b"x" * (limits.MAX_COPY_BYTES + 1))
        await ws.send_raw(msgspec.json.encode(frames.Send(id="m4", to="bob", copies=[too_big])).decode())
        assert (await ws.receive_until(frames.Error)).code == "malformed-frame"

        # A client cannot claim to be someone else: the sender comes from the session.
        forged = msgspec.json.encode(frames.Send(id="m5", to="bob", copies=[body])).decode()
        await ws.send_raw(forged.replace('"type":"send",', '"type":"send","sender":"bob",'))
        assert (await ws.receive_until(frames.Error)).code == "malformed-frame"

        await ws.send(frames.Send(id="m6", to="bob", copies=[body]))
        accepted = await ws.receive_until(frames.Accepted)
        assert accepted.id == "m6" and not accepted.duplicate


async def test_message_delivery_receipts_and_idempotent_resend(node: Node) -> None:
    alice, _ = await register(node.http, "alice")
    bob, bob_keys = await register(node.http, "bob")
    async with node.socket() as alice_ws, node.socket() as bob_ws:
        await alice_ws.authenticate(alice.token)
        await bob_ws.authenticate(bob.token)
        send = frames.Send(
            id="lab-1",
            to="bob",
            copies=await copies_for(node, alice.token, "bob", "alice", skip=alice.device),
        )
        await alice_ws.send(send)
        accepted = await alice_ws.receive_until(frames.Accepted)
        delivered = await bob_ws.receive_until(frames.Deliver)
        assert delivered.message == accepted.message
        assert (delivered.sender, delivered.sender_device, delivered.to) == ("alice", alice.device, "bob")
        assert delivered.body == f"ciphertext-for-{bob.device}".encode()
        assert delivered.at == accepted.at

        # The same client message id again (a resend after a lost `accepted`).
        await alice_ws.send(send)
        again = await alice_ws.receive_until(frames.Accepted)
        assert again.message == accepted.message and again.duplicate

        await bob_ws.send(frames.Ack(up_to=delivered.seq))
        for kind in ("decrypted", "read"):
            receipt = signed_receipt(bob_keys, "bob", bob.device, delivered.message, kind, delivered.body)
            await bob_ws.send(receipt)
        first = await alice_ws.receive_until(frames.Status)
        second = await alice_ws.receive_until(frames.Status)
        assert [first.kind, second.kind] == ["decrypted", "read"]
        assert first.by == "bob" and first.message == accepted.message
        assert first.hash == hashlib.sha256(delivered.body).digest() and len(first.signature) == 64
        await alice_ws.send(frames.Ack(up_to=second.seq))

        # The duplicate was never delivered: the next thing Bob sees is a new message.
        await alice_ws.send(frames.Send(id="lab-2", to="bob", copies=send.copies))
        await alice_ws.receive_until(frames.Accepted)
        assert (await bob_ws.receive_until(frames.Deliver)).seq == delivered.seq + 1

        listing = await node.http.get(
            f"/v1/messages/{accepted.message}/receipts", headers=bearer(alice.token)
        )
        receipts = msgspec.json.decode(listing.content, type=MessageReceipts).receipts
        assert [(r.kind, r.user, r.device) for r in receipts] == [
            ("decrypted", "bob", bob.device),
            ("read", "bob", bob.device),
        ]
        hidden = await node.http.get(f"/v1/messages/{accepted.message}/receipts", headers=bearer(bob.token))
        assert hidden.status_code == 404


async def test_receipt_rules(node: Node) -> None:
    alice, alice_keys = await register(node.http, "alice")
    bob, bob_keys = await register(node.http, "bob")
    mallory, mallory_keys = await register(node.http, "mallory")
    async with node.socket() as alice_ws, node.socket() as mallory_ws, node.socket() as bob_ws:
        await alice_ws.authenticate(alice.token)
        await mallory_ws.authenticate(mallory.token)
        await bob_ws.authenticate(bob.token)
        await alice_ws.send(frames.Send(id="a", to="bob", copies=[frames.Copy(device=bob.device, body=b"c")]))
        accepted = await alice_ws.receive_until(frames.Accepted)
        message = accepted.message
        await mallory_ws.send(signed_receipt(mallory_keys, "mallory", mallory.device, message, "read", b"c"))
        error = await mallory_ws.receive_until(frames.Error)
        assert (error.code, error.ref) == ("not-a-recipient", message)
        await alice_ws.send(signed_receipt(alice_keys, "alice", alice.device, message, "read", b"c"))
        assert (await alice_ws.receive_until(frames.Error)).code == "not-a-recipient"
        await mallory_ws.send(
            signed_receipt(mallory_keys, "mallory", mallory.device, "0000nonexistent", "read", b"c")
        )
        assert (await mallory_ws.receive_until(frames.Error)).code == "unknown-message"
        # Bob's receipt must be signed by Bob's device, over the ciphertext stored for it.
        forged = signed_receipt(mallory_keys, "bob", bob.device, message, "read", b"c")
        await bob_ws.send(forged)
        assert (await bob_ws.receive_until(frames.Error)).code == "invalid-receipt"
        await bob_ws.send(signed_receipt(bob_keys, "bob", bob.device, message, "read", b"another ciphertext"))
        assert (await bob_ws.receive_until(frames.Error)).code == "invalid-receipt"
        await bob_ws.send(signed_receipt(bob_keys, "bob", bob.device, message, "read", b"c"))
        status = await alice_ws.receive_until(frames.Status)
        assert (status.kind, status.by, status.message) == ("read", "bob", message)


async def test_offline_backlog_arrives_in_order_and_acks_purge(node: Node) -> None:
    alice, _ = await register(node.http, "alice")
    bob, _ = await register(node.http, "bob")
    async with node.socket() as alice_ws:
        await alice_ws.authenticate(alice.token)
        for n in range(30):
            await alice_ws.send(
                frames.Send(id=f"m{n}", to="bob", copies=[frames.Copy(device=bob.device, body=b"%d" % n)]),
            )
        accepted = {(await alice_ws.receive_until(frames.Accepted)).id for _ in range(30)}
        assert len(accepted) == 30
    async with node.socket() as bob_ws:
        await bob_ws.authenticate(bob.token)
        bodies = [await bob_ws.receive_until(frames.Deliver) for _ in range(30)]
        assert [int(d.body) for d in bodies] == list(range(30))
        assert [d.seq for d in bodies] == list(range(1, 31))
        await bob_ws.send(frames.Ack(up_to=10))
        await bob_ws.send(frames.Ping(id=1))
        await bob_ws.receive_until(frames.Pong)
    async with node.socket() as bob_ws:
        await bob_ws.authenticate(bob.token)
        resumed = await bob_ws.receive_until(frames.Deliver)
        assert resumed.seq == 11 and resumed.body == b"10"


async def test_a_device_with_nothing_waiting_connects_without_reading_its_inbox(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its acked seq is its last seq: what comes later comes with a notice (server/ws/connection.py)."""
    reads: list[int] = []
    read_inbox = messages.read_inbox

    async def counted(connection, device_id, after_seq, limit):  # type: ignore[no-untyped-def]
        reads.append(device_id)
        return await read_inbox(connection, device_id, after_seq, limit)

    monkeypatch.setattr(messages, "read_inbox", counted)
    alice, _ = await register(node.http, "alice")
    bob, _ = await register(node.http, "bob")
    async with node.socket(alice.token) as alice_ws:
        await alice_ws.send(
            frames.Send(id="m0", to="bob", copies=[frames.Copy(device=bob.device, body=b"0")])
        )
        await alice_ws.receive_until(frames.Accepted)
    async with node.socket(bob.token) as bob_ws:  # one entry waits: read from the inbox
        assert (await bob_ws.receive_until(frames.Deliver)).body == b"0"
        await bob_ws.send(frames.Ack(up_to=1))
        await bob_ws.send(frames.Ping(id=1))
        await bob_ws.receive_until(frames.Pong)
    assert reads == [bob.device]
    async with node.socket(bob.token) as bob_ws, node.socket(alice.token) as alice_ws:
        await alice_ws.send(
            frames.Send(id="m1", to="bob", copies=[frames.Copy(device=bob.device, body=b"1")])
        )
        delivered = await bob_ws.receive_until(frames.Deliver)
        assert (delivered.seq, delivered.body) == (2, b"1")
    assert reads == [
        bob.device
    ]  # nothing waited at the second connection, the new entry came with its notice


async def test_typing_and_presence_between_contacts(node: Node) -> None:
    alice, _ = await register(node.http, "alice")
    bob, _ = await register(node.http, "bob")
    await register(node.http, "stranger")
    async with node.socket() as alice_ws:
        await alice_ws.authenticate(alice.token)
        await alice_ws.send(frames.Watch(users=["bob"]))
        refused = await alice_ws.receive_until(frames.Error)
        assert refused.code == "not-a-contact" and refused.details == {"users": ["bob"]}
        await alice_ws.send(frames.Watch(users=["ghost"]))
        assert (await alice_ws.receive_until(frames.Error)).code == "unknown-user"

        await alice_ws.send(
            frames.Send(id="hello", to="bob", copies=[frames.Copy(device=bob.device, body=b"c")])
        )
        await alice_ws.receive_until(frames.Accepted)
        await alice_ws.send(frames.Watch(users=["bob"]))
        assert (await alice_ws.receive_until(frames.Presence)) == frames.Presence(user="bob", online=False)
        async with node.socket() as bob_ws:
            await bob_ws.authenticate(bob.token)
            assert (await alice_ws.receive_until(frames.Presence)) == frames.Presence(user="bob", online=True)
            await alice_ws.send(frames.Typing(to="bob", active=True))
            typing = await bob_ws.receive_until(frames.TypingEvent)
            assert (typing.sender, typing.active) == ("alice", True)
        assert (await alice_ws.receive_until(frames.Presence)) == frames.Presence(user="bob", online=False)


async def test_a_second_connection_of_a_device_replaces_the_first(node: Node) -> None:
    alice, _ = await register(node.http, "alice")
    async with node.socket() as first:
        await first.authenticate(alice.token)
        async with node.socket() as second:
            await second.authenticate(alice.token)
            error = await first.receive_until(frames.Error)
            assert error.code == "replaced"
            assert await first.close_code() == 4409
            await second.send(frames.Ping(id=3))
            assert (await second.receive_until(frames.Pong)).id == 3


async def test_an_open_socket_is_closed_when_its_session_expires(sqlite_database_url: str) -> None:
    settings = Settings(database_url=sqlite_database_url, session_ttl_seconds=2)
    async with serving(settings) as url, httpx.AsyncClient(base_url=url) as http:
        grant, _ = await register(http, "alice")
        async with frame_socket(url, grant.token) as ws:
            error = await ws.receive_until(frames.Error, timeout=15)
            assert error.code == "auth-failed" and "expired" in error.message
            assert await ws.close_code() == 4401


async def test_logging_out_closes_the_open_socket_of_that_session(node: Node) -> None:
    alice, _ = await register(node.http, "alice")
    async with node.socket() as ws:
        await ws.authenticate(alice.token)
        assert (await node.http.post("/v1/logout", headers=bearer(alice.token))).status_code == 204
        error = await ws.receive_until(frames.Error)
        assert error.code == "auth-failed" and "signed out" in error.message
        assert await ws.close_code() == 4401


def _connection_tasks() -> list[str]:
    """The tasks a connection runs besides the one serving its socket (pump, writer, send and ack writers)."""
    return sorted(
        name
        for task in asyncio.all_tasks()
        if (name := task.get_coro().__qualname__).startswith("DeviceConnection.")  # type: ignore[union-attr]
    )


async def _until_no_connection_tasks() -> None:
    try:
        async with asyncio.timeout(5):
            while _connection_tasks():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"still running: {_connection_tasks()}") from None


async def test_idle_sockets_hold_no_task_and_traffic_starts_them_again(node: Node) -> None:
    """A node holds tens of thousands of idle sockets: their pump and writer run only while there is work."""
    alice, _ = await register(node.http, "alice")
    bob, _ = await register(node.http, "bob")
    async with node.socket() as alice_ws, node.socket() as bob_ws:
        await alice_ws.authenticate(alice.token)
        await bob_ws.authenticate(bob.token)
        await _until_no_connection_tasks()
        copies = await copies_for(node, alice.token, "bob")
        for round_number in (1, 2):
            await alice_ws.send(frames.Send(id=f"lab-{round_number}", to="bob", copies=copies))
            await alice_ws.receive_until(frames.Accepted)
            delivered = await bob_ws.receive_until(frames.Deliver)
            assert delivered.seq == round_number
            await bob_ws.send(frames.Ack(up_to=delivered.seq))
            await bob_ws.send(frames.Ping(id=round_number))
            assert (await bob_ws.receive_until(frames.Pong)).id == round_number
            await _until_no_connection_tasks()


async def test_each_batch_of_sends_is_timed_from_arrival_to_answer(node: Node) -> None:
    alice, _ = await register(node.http, "alice")
    await register(node.http, "bob")

    async def batches_timed() -> float:
        metrics = (await node.http.get("/metrics")).text
        [count] = [
            line.split()[1] for line in metrics.splitlines() if line.startswith("lien_accept_seconds_count")
        ]
        return float(count)

    assert await batches_timed() == 0
    async with node.socket() as ws:
        await ws.authenticate(alice.token)
        await ws.send(frames.Send(id="k-1", to="bob", copies=await copies_for(node, alice.token, "bob")))
        await ws.receive_until(frames.Accepted)
        # Addressed to bob with copies for alice's devices: refused in storage, answered and timed too.
        await ws.send(frames.Send(id="k-2", to="bob", copies=await copies_for(node, alice.token, "alice")))
        assert (await ws.receive_until(frames.Error)).code == "devices-mismatch"
    assert await batches_timed() == 2


async def test_the_server_declines_the_compression_browsers_offer(node: Node) -> None:
    """Browsers always offer permessage-deflate; a node keeps no zlib state per socket (protocol §2.2)."""
    alice, _ = await register(node.http, "alice")
    bob, _ = await register(node.http, "bob")
    async with node.socket() as alice_ws, node.socket() as bob_ws:
        for ws in (alice_ws, bob_ws):
            offered = ws.socket.request.headers.get("Sec-WebSocket-Extensions") if ws.socket.request else None
            assert offered is not None and "permessage-deflate" in offered
            assert ws.socket.response is not None
            assert "Sec-WebSocket-Extensions" not in ws.socket.response.headers
            assert ws.socket.protocol.extensions == []
        await alice_ws.authenticate(alice.token)
        await bob_ws.authenticate(bob.token)
        copies = await copies_for(node, alice.token, "bob")
        await alice_ws.send(frames.Send(id="uncompressed", to="bob", copies=copies))
        await alice_ws.receive_until(frames.Accepted)
        assert (await bob_ws.receive_until(frames.Deliver)).body == copies[0].body

"""The WebSocket protocol in process: delivery rules and every documented error."""

from __future__ import annotations

import msgspec
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from lien.protocol import frames, limits
from lien.protocol.api import MessageReceipts
from tests.appclient import (
    app_client,
    authenticate,
    bearer,
    receive_frame,
    receive_until,
    register,
    send_frame,
)


@pytest.fixture
def client(database_url: str):  # type: ignore[no-untyped-def]
    with app_client(database_url) as client:
        yield client


def copies_for(client: TestClient, token: str, *usernames: str, skip: int | None = None) -> list[frames.Copy]:
    devices: list[int] = []
    for username in usernames:
        listing = client.get(f"/v1/users/{username}/devices", headers=bearer(token)).json()
        devices += [d["device"] for d in listing["devices"] if d["device"] != skip]
    return [frames.Copy(device=d, body=f"ciphertext-for-{d}".encode()) for d in sorted(set(devices))]


def test_auth_is_required_first(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        send_frame(ws, frames.Ping(id=1))
        error = receive_frame(ws)
        assert isinstance(error, frames.Error) and error.code == "not-authenticated"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 4401


def test_wrong_token_closes_with_4401(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        send_frame(ws, frames.Auth(v=1, token="not-a-token"))
        error = receive_frame(ws)
        assert isinstance(error, frames.Error) and error.code == "auth-failed"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 4401


def test_unsupported_version(client: TestClient) -> None:
    grant, _ = register(client, "alice")
    with client.websocket_connect("/ws") as ws:
        send_frame(ws, frames.Auth(v=99, token=grant.token))
        error = receive_frame(ws)
        assert isinstance(error, frames.Error) and error.code == "unsupported-version"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
        assert closed.value.code == 4426


def test_bad_frames_get_errors_and_the_connection_keeps_serving(client: TestClient) -> None:
    grant, _ = register(client, "alice")
    with client.websocket_connect("/ws") as ws:
        authenticate(ws, grant.token)
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
            ws.send_text(raw)
            error = receive_until(ws, frames.Error)
            assert error.code == code, (raw[:40], error)
            assert "Traceback" not in error.message
        ws.send_bytes(b"\x00\x01")
        assert receive_until(ws, frames.Error).code == "malformed-frame"
        send_frame(ws, frames.Ping(id=7))
        assert receive_until(ws, frames.Pong) == frames.Pong(id=7)


def test_send_errors_name_the_frame(client: TestClient) -> None:
    alice, _ = register(client, "alice")
    bob, _ = register(client, "bob")
    with client.websocket_connect("/ws") as ws:
        authenticate(ws, alice.token)
        body = frames.Copy(device=bob.device, body=b"c")
        send_frame(ws, frames.Send(id="m1", to="nobody", copies=[body]))
        error = receive_until(ws, frames.Error)
        assert (error.code, error.ref) == ("unknown-user", "m1")

        send_frame(ws, frames.Send(id="m2", to="bob", copies=[frames.Copy(device=bob.device + 100, body=b"c")]))
        error = receive_until(ws, frames.Error)
        assert (error.code, error.ref) == ("devices-mismatch", "m2")
        assert error.details == {"missing": [bob.device], "extra": [bob.device + 100]}

        send_frame(ws, frames.Send(id="m3", to="bob", copies=[body, body]))
        assert receive_until(ws, frames.Error).code == "malformed-frame"

        too_big = frames.Copy(device=bob.device, body=b"x" * (limits.MAX_COPY_BYTES + 1))
        ws.send_text(msgspec.json.encode(frames.Send(id="m4", to="bob", copies=[too_big])).decode())
        assert receive_until(ws, frames.Error).code == "malformed-frame"

        # A client cannot claim to be someone else: the sender comes from the session.
        forged = msgspec.json.encode(frames.Send(id="m5", to="bob", copies=[body])).decode()
        ws.send_text(forged.replace('"type":"send",', '"type":"send","sender":"bob",'))
        assert receive_until(ws, frames.Error).code == "malformed-frame"

        send_frame(ws, frames.Send(id="m6", to="bob", copies=[body]))
        accepted = receive_until(ws, frames.Accepted)
        assert accepted.id == "m6" and not accepted.duplicate


def test_message_delivery_receipts_and_idempotent_resend(client: TestClient) -> None:
    alice, _ = register(client, "alice")
    bob, _ = register(client, "bob")
    with client.websocket_connect("/ws") as alice_ws, client.websocket_connect("/ws") as bob_ws:
        authenticate(alice_ws, alice.token)
        authenticate(bob_ws, bob.token)
        send = frames.Send(id="lab-1", to="bob", copies=copies_for(client, alice.token, "bob", "alice", skip=alice.device))
        send_frame(alice_ws, send)
        accepted = receive_until(alice_ws, frames.Accepted)
        delivered = receive_until(bob_ws, frames.Deliver)
        assert delivered.message == accepted.message
        assert (delivered.sender, delivered.sender_device, delivered.to) == ("alice", alice.device, "bob")
        assert delivered.body == f"ciphertext-for-{bob.device}".encode()
        assert delivered.at == accepted.at

        # The same client message id again (a resend after a lost `accepted`).
        send_frame(alice_ws, send)
        again = receive_until(alice_ws, frames.Accepted)
        assert again.message == accepted.message and again.duplicate

        send_frame(bob_ws, frames.Ack(up_to=delivered.seq))
        send_frame(bob_ws, frames.Receipt(message=delivered.message, kind="decrypted"))
        send_frame(bob_ws, frames.Receipt(message=delivered.message, kind="read"))
        first = receive_until(alice_ws, frames.Status)
        second = receive_until(alice_ws, frames.Status)
        assert [first.kind, second.kind] == ["decrypted", "read"]
        assert first.by == "bob" and first.message == accepted.message
        send_frame(alice_ws, frames.Ack(up_to=second.seq))

        # The duplicate was never delivered: the next thing Bob sees is a new message.
        send_frame(alice_ws, frames.Send(id="lab-2", to="bob", copies=send.copies))
        receive_until(alice_ws, frames.Accepted)
        assert receive_until(bob_ws, frames.Deliver).seq == delivered.seq + 1

        listing = client.get(f"/v1/messages/{accepted.message}/receipts", headers=bearer(alice.token))
        receipts = msgspec.json.decode(listing.content, type=MessageReceipts).receipts
        assert [(r.kind, r.user, r.device) for r in receipts] == [("decrypted", "bob", bob.device), ("read", "bob", bob.device)]
        hidden = client.get(f"/v1/messages/{accepted.message}/receipts", headers=bearer(bob.token))
        assert hidden.status_code == 404


def test_receipt_rules(client: TestClient) -> None:
    alice, _ = register(client, "alice")
    bob, _ = register(client, "bob")
    mallory, _ = register(client, "mallory")
    with client.websocket_connect("/ws") as alice_ws, client.websocket_connect("/ws") as mallory_ws:
        authenticate(alice_ws, alice.token)
        authenticate(mallory_ws, mallory.token)
        send_frame(alice_ws, frames.Send(id="a", to="bob", copies=[frames.Copy(device=bob.device, body=b"c")]))
        accepted = receive_until(alice_ws, frames.Accepted)
        send_frame(mallory_ws, frames.Receipt(message=accepted.message, kind="read"))
        error = receive_until(mallory_ws, frames.Error)
        assert (error.code, error.ref) == ("not-a-recipient", accepted.message)
        send_frame(alice_ws, frames.Receipt(message=accepted.message, kind="read"))
        assert receive_until(alice_ws, frames.Error).code == "not-a-recipient"
        send_frame(mallory_ws, frames.Receipt(message="0000nonexistent", kind="read"))
        assert receive_until(mallory_ws, frames.Error).code == "unknown-message"


def test_offline_backlog_arrives_in_order_and_acks_purge(client: TestClient) -> None:
    alice, _ = register(client, "alice")
    bob, _ = register(client, "bob")
    with client.websocket_connect("/ws") as alice_ws:
        authenticate(alice_ws, alice.token)
        for n in range(30):
            send_frame(alice_ws, frames.Send(id=f"m{n}", to="bob", copies=[frames.Copy(device=bob.device, body=b"%d" % n)]))
        accepted = {receive_until(alice_ws, frames.Accepted).id for _ in range(30)}
        assert len(accepted) == 30
    with client.websocket_connect("/ws") as bob_ws:
        authenticate(bob_ws, bob.token)
        bodies = [receive_until(bob_ws, frames.Deliver) for _ in range(30)]
        assert [int(d.body) for d in bodies] == list(range(30))
        assert [d.seq for d in bodies] == list(range(1, 31))
        send_frame(bob_ws, frames.Ack(up_to=10))
        send_frame(bob_ws, frames.Ping(id=1))
        receive_until(bob_ws, frames.Pong)
    with client.websocket_connect("/ws") as bob_ws:
        authenticate(bob_ws, bob.token)
        resumed = receive_until(bob_ws, frames.Deliver)
        assert resumed.seq == 11 and resumed.body == b"10"


def test_typing_and_presence_between_contacts(client: TestClient) -> None:
    alice, _ = register(client, "alice")
    bob, _ = register(client, "bob")
    register(client, "stranger")
    with client.websocket_connect("/ws") as alice_ws:
        authenticate(alice_ws, alice.token)
        send_frame(alice_ws, frames.Watch(users=["bob"]))
        refused = receive_until(alice_ws, frames.Error)
        assert refused.code == "not-a-contact" and refused.details == {"users": ["bob"]}
        send_frame(alice_ws, frames.Watch(users=["ghost"]))
        assert receive_until(alice_ws, frames.Error).code == "unknown-user"

        send_frame(alice_ws, frames.Send(id="hello", to="bob", copies=[frames.Copy(device=bob.device, body=b"c")]))
        receive_until(alice_ws, frames.Accepted)
        send_frame(alice_ws, frames.Watch(users=["bob"]))
        assert receive_until(alice_ws, frames.Presence) == frames.Presence(user="bob", online=False)
        with client.websocket_connect("/ws") as bob_ws:
            authenticate(bob_ws, bob.token)
            assert receive_until(alice_ws, frames.Presence) == frames.Presence(user="bob", online=True)
            send_frame(alice_ws, frames.Typing(to="bob", active=True))
            typing = receive_until(bob_ws, frames.TypingEvent)
            assert (typing.sender, typing.active) == ("alice", True)
        assert receive_until(alice_ws, frames.Presence) == frames.Presence(user="bob", online=False)


def test_a_second_connection_of_a_device_replaces_the_first(client: TestClient) -> None:
    alice, _ = register(client, "alice")
    with client.websocket_connect("/ws") as first:
        authenticate(first, alice.token)
        with client.websocket_connect("/ws") as second:
            authenticate(second, alice.token)
            error = receive_until(first, frames.Error)
            assert error.code == "replaced"
            with pytest.raises(WebSocketDisconnect) as closed:
                first.receive_text()
            assert closed.value.code == 4409
            send_frame(second, frames.Ping(id=3))
            assert receive_until(second, frames.Pong).id == 3

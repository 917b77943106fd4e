"""lien.protocol.client.ClientProtocol, driven by hand-made server frames (no I/O)."""

from __future__ import annotations

import pytest

from lien.protocol import codec, errors, frames, limits
from lien.protocol.client import (
    ClientProtocol,
    Connected,
    Ephemeral,
    InboxItem,
    SendAccepted,
    SendRefused,
    ServerError,
)


def ready(**overrides: object) -> bytes:
    fields: dict[str, object] = {
        "v": limits.PROTOCOL_VERSION,
        "user": "alice",
        "device": 1,
        "server_time": 1_000,
        "prekeys": 50,
        "replenish": False,
    }
    fields.update(overrides)
    return codec.encode(frames.Ready(**fields))  # type: ignore[arg-type]


def send(client_id: str) -> frames.Send:
    return frames.Send(id=client_id, to="bob", copies=[frames.Copy(device=2, body=client_id.encode())])


def accepted(client_id: str, message: str = "srv") -> str:
    return codec.encode_text(frames.Accepted(id=client_id, message=message, at=5))


def deliver(seq: int) -> bytes:
    return codec.encode(
        frames.Deliver(seq=seq, message=f"m{seq}", sender="bob", sender_device=2, to="alice", body=b"c", at=1)
    )


def error(code: str, ref: str | None = None, **extra: object) -> bytes:
    return codec.encode(frames.Error(code=code, message="from the server", ref=ref, **extra))  # type: ignore[arg-type]


def connected() -> ClientProtocol:
    protocol = ClientProtocol()
    protocol.auth("token")
    assert isinstance(protocol.receive(ready()), Connected)
    return protocol


def test_auth_frame_carries_the_version_and_clears_ready() -> None:
    protocol = connected()
    assert protocol.ready is not None
    data = protocol.auth("s3cret")
    assert codec.decode_client_frame(data) == frames.Auth(v=limits.PROTOCOL_VERSION, token="s3cret")
    assert protocol.ready is None
    event = protocol.receive(ready(device=7, replenish=True))
    assert isinstance(event, Connected)
    assert event.ready.device == 7 and event.ready.replenish
    assert protocol.ready == event.ready


def test_pending_until_accepted() -> None:
    protocol = connected()
    first = protocol.send(send("a"))
    assert codec.decode_client_frame(first) == send("a")
    protocol.send(send("b"))
    assert protocol.pending_count == 2

    event = protocol.receive(accepted("a", message="srv-a"))
    assert isinstance(event, SendAccepted)
    assert event.accepted.id == "a" and event.accepted.message == "srv-a"
    assert protocol.pending_sends() == [codec.encode(send("b"))]
    assert protocol.pending_count == 1

    # An accepted for something not pending (a duplicate answer) changes nothing.
    assert isinstance(protocol.receive(accepted("zzz")), SendAccepted)
    assert protocol.pending_count == 1


def test_pending_sends_resent_in_first_send_order_after_reconnect() -> None:
    protocol = connected()
    for client_id in ["c", "a", "b", "d"]:
        protocol.send(send(client_id))
    protocol.receive(accepted("a"))
    # Sending "c" again (e.g. after devices-mismatch) replaces its bytes but keeps its place.
    resent_c = frames.Send(id="c", to="bob", copies=[frames.Copy(device=3, body=b"new")])
    protocol.send(resent_c)

    # The socket drops; a new one authenticates; the server says ready.
    protocol.auth("token")
    protocol.receive(ready())
    assert [codec.decode_client_frame(data) for data in protocol.pending_sends()] == [
        resent_c,
        send("b"),
        send("d"),
    ]


def test_pending_until_refused() -> None:
    protocol = connected()
    protocol.send(send("a"))
    protocol.send(send("b"))
    event = protocol.receive(error("devices-mismatch", ref="a", details={"missing": [4], "extra": []}))
    assert isinstance(event, SendRefused)
    assert event.client_id == "a"
    assert isinstance(event.error, errors.DevicesMismatch)
    assert event.error.details == {"missing": [4], "extra": []}
    # Refused means not stored: it is not resent after a reconnect.
    assert protocol.pending_sends() == [codec.encode(send("b"))]
    protocol.forget("a")  # what the SDK does on a refusal: harmless
    assert protocol.pending_count == 1
    # A second error about it is no longer tied to a pending send.
    late = protocol.receive(error("rate-limited", ref="a", retry_after=3.0))
    assert isinstance(late, ServerError)
    assert late.ref == "a" and isinstance(late.error, errors.RateLimited)
    assert late.error.retry_after == 3.0
    # Sending it again (same client id, refreshed copies) makes it pending again.
    protocol.send(send("a"))
    assert protocol.pending_sends() == [codec.encode(send("b")), codec.encode(send("a"))]


def test_forget_abandons_a_send() -> None:
    protocol = connected()
    protocol.send(send("a"))
    protocol.send(send("b"))
    protocol.forget("a")
    protocol.forget("never-sent")
    assert protocol.pending_sends() == [codec.encode(send("b"))]


def test_errors_without_a_pending_ref_are_server_errors() -> None:
    protocol = connected()
    protocol.send(send("a"))
    no_ref = protocol.receive(error("invalid-ack"))
    assert isinstance(no_ref, ServerError)
    assert no_ref.ref is None and isinstance(no_ref.error, errors.InvalidAck)
    receipt_ref = protocol.receive(error("not-a-recipient", ref="srv-message-9"))
    assert isinstance(receipt_ref, ServerError)
    assert receipt_ref.ref == "srv-message-9" and isinstance(receipt_ref.error, errors.NotARecipient)
    unknown = protocol.receive(error("from-the-future"))
    assert isinstance(unknown, ServerError)
    assert type(unknown.error) is errors.LienError and unknown.error.code == "from-the-future"
    assert protocol.pending_count == 1


def test_acks_coalesce() -> None:
    protocol = connected()
    assert protocol.ack() is None  # nothing handled yet
    for seq in (1, 2, 3):
        event = protocol.receive(deliver(seq))
        assert isinstance(event, InboxItem) and event.frame.seq == seq
        protocol.handled(seq)
    assert protocol.unacked == 3
    assert protocol.ack(at_least=4) is None
    data = protocol.ack(at_least=3)
    assert data is not None and codec.decode_client_frame(data) == frames.Ack(up_to=3)
    assert protocol.unacked == 0
    assert protocol.ack() is None  # nothing new since

    protocol.handled(4)
    protocol.handled(2)  # an older entry handled late never moves the ack back
    assert protocol.unacked == 1
    data = protocol.ack()
    assert data is not None and codec.decode_client_frame(data) == frames.Ack(up_to=4)
    assert protocol.ack(at_least=0) is None


def test_ready_resets_the_counters() -> None:
    protocol = connected()
    protocol.handled(10)
    assert protocol.ack() is not None
    protocol.handled(12)
    assert protocol.unacked == 2

    # Reconnect: the server resumes after what it saw acked and numbers from there.
    protocol.auth("token")
    assert isinstance(protocol.receive(ready()), Connected)
    assert protocol.unacked == 0
    assert protocol.ack() is None
    protocol.handled(11)  # redelivered: below the old high-water mark, but a fresh ack is due
    data = protocol.ack()
    assert data is not None and codec.decode_client_frame(data) == frames.Ack(up_to=11)


@pytest.mark.parametrize(
    "frame",
    [
        frames.TypingEvent(sender="bob", sender_device=2, active=True),
        frames.Presence(user="bob", online=False),
        frames.PrekeysLow(remaining=3),
        frames.Pong(id=4),
    ],
    ids=lambda f: type(f).__name__,
)
def test_ephemeral_frames(frame: frames.Frame) -> None:
    protocol = connected()
    protocol.send(send("a"))
    protocol.handled(1)
    event = protocol.receive(codec.encode(frame))
    assert event == Ephemeral(frame)  # type: ignore[arg-type]
    assert protocol.pending_count == 1 and protocol.unacked == 1


def test_status_is_an_inbox_item() -> None:
    protocol = connected()
    status = frames.Status(
        seq=5,
        message="m",
        kind="delivered",
        by="bob",
        by_device=2,
        at=3,
        hash=bytes(32),
        device_time=3,
        signature=bytes(64),
    )
    assert protocol.receive(codec.encode(status)) == InboxItem(status)


def test_undecodable_server_frames_raise_lien_errors_and_change_nothing() -> None:
    protocol = connected()
    protocol.send(send("a"))
    protocol.handled(2)
    with pytest.raises(errors.MalformedFrame):
        protocol.receive(b"{not json")
    with pytest.raises(errors.UnknownFrameType):
        protocol.receive(b'{"type":"surprise"}')
    with pytest.raises(errors.UnknownFrameType):
        protocol.receive(codec.encode(frames.Ping(id=1)))  # a client frame
    assert protocol.pending_count == 1 and protocol.unacked == 2

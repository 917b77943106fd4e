"""lien.protocol.codec and frames: round trips, typed failures, limits at the boundary, fuzzing."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lien.protocol import codec, errors, frames, limits

FUZZ = settings(
    derandomize=True, database=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow]
)

CLIENT_FRAMES: list[frames.Frame] = [
    frames.Auth(v=limits.PROTOCOL_VERSION, token="t0ken"),
    frames.Send(
        id="msg-1:a.b_c",
        to="dr.martin",
        copies=[frames.Copy(device=1, body=b"\x00\x01\xff"), frames.Copy(device=2**53 - 1, body=b"x")],
    ),
    frames.GroupSend(id="g-1", group="GABCDEF234567", epoch=3, body=b"\x03body"),
    frames.GroupSend(
        id="g-2", group="GABCDEF234567", epoch=4, body=b"\x03b", keys=[frames.Copy(device=5, body=b"\x02k")]
    ),
    frames.Resend(id="r-1", message="srv-1", copies=[frames.Copy(device=2, body=b"\x02again")]),
    frames.Ack(up_to=0),
    frames.Ack(up_to=2**53 - 1),
    *[
        frames.Receipt(message="m-1", kind=kind, hash=bytes(32), at=1_700_000_000_000, signature=bytes(64))
        for kind in ("delivered", "decrypted", "read", "decrypt-failed")
    ],
    frames.Typing(to="nurse-1", active=True),
    frames.Typing(group="GABCDEF234567", active=False),
    frames.Watch(users=[]),
    frames.Watch(users=["abc", "dr.martin"]),
    frames.Ping(id=2**53 - 1),
]

SERVER_FRAMES: list[frames.Frame] = [
    frames.Ready(v=1, user="alice", device=3, server_time=1_700_000_000_000, prekeys=42, replenish=False),
    frames.Accepted(id="msg-1", message="srv-1", at=1_700_000_000_001),
    frames.Accepted(id="msg-1", message="srv-1", at=1_700_000_000_001, duplicate=True),
    frames.Deliver(
        seq=7, message="srv-1", sender="bob", sender_device=2, to="alice", body=b"\x01cipher", at=5
    ),
    frames.Deliver(
        seq=8, message="srv-2", sender="bob", sender_device=2, group="GABC", body=b"\x03", key=b"\x02k", at=6
    ),
    frames.Status(
        seq=8,
        message="srv-1",
        kind="read",
        by="bob",
        by_device=2,
        at=6,
        hash=bytes(32),
        device_time=5,
        signature=bytes(64),
    ),
    frames.GroupEvent(seq=9, group="GABC", epoch=2, event="member-added", actor="alice", subject="bob", at=7),
    frames.TypingEvent(sender="bob", sender_device=2, active=False),
    frames.TypingEvent(sender="bob", sender_device=2, group="GABC", active=True),
    frames.Presence(user="bob", online=True),
    frames.DevicesChanged(user="bob"),
    frames.PrekeysLow(remaining=3),
    frames.Pong(id=9),
    frames.Error(code="rate-limited", message="slow down"),
    frames.Error(
        code="devices-mismatch",
        message="refresh",
        ref="msg-1",
        retry_after=1.5,
        details={"missing": [1, 2], "extra": []},
    ),
]


def _tags(union: Any) -> set[str]:
    return {cls.__struct_config__.tag for cls in union.__args__}


def test_samples_cover_every_frame_type() -> None:
    assert {type(f) for f in CLIENT_FRAMES} == set(frames.ClientFrame.__args__)  # type: ignore[attr-defined]
    assert {type(f) for f in SERVER_FRAMES} == set(frames.ServerFrame.__args__)  # type: ignore[attr-defined]


@pytest.mark.parametrize("frame", CLIENT_FRAMES, ids=lambda f: type(f).__name__)
def test_client_frame_round_trip(frame: frames.Frame) -> None:
    data = codec.encode(frame)
    assert codec.decode_client_frame(data) == frame
    assert codec.decode_client_frame(codec.encode_text(frame)) == frame
    assert json.loads(data)["type"] == frame.__struct_config__.tag


@pytest.mark.parametrize("frame", SERVER_FRAMES, ids=lambda f: type(f).__name__)
def test_server_frame_round_trip(frame: frames.Frame) -> None:
    data = codec.encode(frame)
    assert codec.decode_server_frame(data) == frame
    assert codec.decode_server_frame(codec.encode_text(frame)) == frame


def test_bytes_travel_as_standard_base64() -> None:
    data = codec.encode(frames.Send(id="a", to="bob", copies=[frames.Copy(device=1, body=b"\xfb\xff")]))
    assert json.loads(data)["copies"][0]["body"] == "+/8="


def test_client_and_server_sides_are_distinct() -> None:
    # A server frame sent to the server (or the reverse) is an unknown type, except
    # "typing" whose tag both sides share with different fields.
    with pytest.raises(errors.UnknownFrameType):
        codec.decode_client_frame(codec.encode(frames.Pong(id=1)))
    with pytest.raises(errors.UnknownFrameType):
        codec.decode_server_frame(codec.encode(frames.Ping(id=1)))
    with pytest.raises(errors.MalformedFrame):
        codec.decode_server_frame(codec.encode(frames.Typing(to="bob", active=True)))


# --- typed failures --------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"\xff\xfe",
        b"{",
        b'{"type":"ping","id":1',
        b"null",
        b"[]",
        b'"ping"',
        b"1e999999",
        b'{"id":1}',  # no type at all
        b'{"type":5,"id":1}',  # a type that is not a string
        b'{"type":["ping"],"id":1}',
        b'{"type":{"a":1},"id":1}',
        b'{"type":null,"id":1}',
        b'{"type":"ping"}',  # missing field
        b'{"type":"ping","id":"1"}',  # wrong field type
        b'{"type":"ping","id":-1}',
        b'{"type":"auth","v":1,"token":"\xff"}',  # invalid UTF-8 inside a string
        b'{"type":"send","id":"a","to":"bob","copies":[{"device":1,"body":"!!"}]}',  # bad base64
        b'{"type":"receipt","message":"m","kind":"seen"}',
        b'{"type":"typing","to":"bob","active":"yes"}',
    ],
)
def test_malformed_frames(data: bytes) -> None:
    with pytest.raises(errors.MalformedFrame) as caught:
        codec.decode_client_frame(data)
    assert caught.value.code == "malformed-frame"
    assert caught.value.close_code is None


def test_text_that_is_not_unicode_is_malformed() -> None:
    with pytest.raises(errors.MalformedFrame):
        codec.decode_client_frame('{"type":"ping","id":1,"x":"\ud800"}')
    with pytest.raises(errors.MalformedFrame):
        codec.decode_server_frame('{"type":"pong","id":"\udfff"}')


@pytest.mark.parametrize("tag", ["nope", "PING", "accepted", ""])
def test_unknown_frame_type(tag: str) -> None:
    with pytest.raises(errors.UnknownFrameType) as caught:
        codec.decode_client_frame(msgspec.json.encode({"type": tag, "id": 1}))
    assert caught.value.code == "unknown-frame-type"
    assert tag in caught.value.message


@pytest.mark.parametrize("frame", CLIENT_FRAMES, ids=lambda f: type(f).__name__)
def test_unknown_fields_rejected(frame: frames.Frame) -> None:
    as_dict = msgspec.to_builtins(frame)
    as_dict["extra"] = 1
    with pytest.raises(errors.MalformedFrame, match="extra"):
        codec.decode_client_frame(msgspec.json.encode(as_dict))


@pytest.mark.parametrize("frame", SERVER_FRAMES, ids=lambda f: type(f).__name__)
def test_unknown_fields_rejected_from_server(frame: frames.Frame) -> None:
    as_dict = msgspec.to_builtins(frame)
    as_dict["extra"] = 1
    with pytest.raises(errors.MalformedFrame, match="extra"):
        codec.decode_server_frame(msgspec.json.encode(as_dict))


def test_unknown_fields_rejected_in_a_copy() -> None:
    data = b'{"type":"send","id":"a","to":"bob","copies":[{"device":1,"body":"eA==","x":0}]}'
    with pytest.raises(errors.MalformedFrame, match="x"):
        codec.decode_client_frame(data)


# --- limits at the boundary ----------------------------------------------------------


def _padded(size: int) -> bytes:
    """A valid ping frame, padded with JSON whitespace to exactly ``size`` bytes."""
    frame = b'{"type":"ping","id":1}'
    return frame + b" " * (size - len(frame))


def test_frame_size_at_and_past_the_limit() -> None:
    at_limit = _padded(limits.MAX_FRAME_BYTES)
    assert len(at_limit) == limits.MAX_FRAME_BYTES
    assert codec.decode_client_frame(at_limit) == frames.Ping(id=1)
    assert codec.decode_client_frame(at_limit.decode()) == frames.Ping(id=1)
    for over in (_padded(limits.MAX_FRAME_BYTES + 1), _padded(limits.MAX_FRAME_BYTES + 1).decode()):
        with pytest.raises(errors.FrameTooLarge) as caught:
            codec.decode_client_frame(over)
        assert caught.value.code == "frame-too-large" and caught.value.http_status == 413
    with pytest.raises(errors.FrameTooLarge):
        codec.decode_server_frame(_padded(limits.MAX_FRAME_BYTES + 1))


def test_frame_size_counts_bytes_of_text_frames() -> None:
    # 2-byte characters: fewer characters than the limit, more bytes than it.
    prefix = '{"type":"ping","id":1,"pad":"'
    chars = (limits.MAX_FRAME_BYTES - len(prefix) - 2) // 2 + 1
    text = prefix + "é" * chars + '"}'
    assert len(text) <= limits.MAX_FRAME_BYTES < len(text.encode())
    with pytest.raises(errors.FrameTooLarge):
        codec.decode_client_frame(text)
    fits = prefix + "é" * (chars - 1) + '"}'
    assert len(fits.encode()) <= limits.MAX_FRAME_BYTES
    with pytest.raises(errors.MalformedFrame):  # small enough, then refused for its unknown field
        codec.decode_client_frame(fits)


def _send(**overrides: Any) -> frames.Send:
    fields: dict[str, Any] = {"id": "m1", "to": "bob", "copies": [frames.Copy(device=1, body=b"x")]}
    fields.update(overrides)
    return frames.Send(**fields)


def _receipt(**fields: Any) -> frames.Receipt:
    values: dict[str, Any] = {
        "message": "m-1",
        "kind": "read",
        "hash": bytes(32),
        "at": 1_700_000_000_000,
        "signature": bytes(64),
        **fields,
    }
    return frames.Receipt(**values)


def _copies(count: int) -> list[frames.Copy]:
    return [frames.Copy(device=n + 1, body=b"x") for n in range(count)]


VALID_AT_LIMIT: list[frames.Frame] = [
    _send(id="i" * limits.MAX_CLIENT_MESSAGE_ID_CHARS),
    _send(to="a" * limits.MIN_USERNAME_CHARS),
    _send(to="a" * limits.MAX_USERNAME_CHARS),
    _send(copies=_copies(limits.MAX_COPIES_PER_ENVELOPE)),
    _send(copies=[frames.Copy(device=1, body=b"\x00" * limits.MAX_COPY_BYTES)]),
    _send(copies=[frames.Copy(device=2**53 - 1, body=b"x")]),
    frames.Watch(users=[f"user{n}" for n in range(limits.MAX_WATCHED_USERS)]),
    frames.Auth(v=1, token="t" * 256),
    frames.Ping(id=0),
    frames.Ack(up_to=2**53 - 1),
    _receipt(message="m" * 64),
]

# Counts a client controls past their limit decode, and are refused by the handler with their own
# code (too-many-recipients, too-many-watched), not as malformed frames: see tests/test_ws_protocol.py.
DECODED_BUT_REFUSED: list[frames.Frame] = [
    _send(copies=_copies(limits.MAX_COPIES_PER_ENVELOPE + 1)),
    frames.Watch(users=[f"user{n}" for n in range(limits.MAX_WATCHED_USERS + 1)]),
]

INVALID_PAST_LIMIT: list[frames.Frame] = [
    _send(id=""),
    _send(id="i" * (limits.MAX_CLIENT_MESSAGE_ID_CHARS + 1)),
    _send(id="has space"),
    _send(id="é"),
    _send(to="a" * (limits.MIN_USERNAME_CHARS - 1)),
    _send(to="a" * (limits.MAX_USERNAME_CHARS + 1)),
    _send(to="Bob"),
    _send(to=".bob"),
    _send(copies=[]),
    _send(copies=[frames.Copy(device=1, body=b"")]),
    _send(copies=[frames.Copy(device=1, body=b"\x00" * (limits.MAX_COPY_BYTES + 1))]),
    _send(copies=[frames.Copy(device=0, body=b"x")]),
    _send(copies=[frames.Copy(device=2**53, body=b"x")]),
    frames.Auth(v=1, token=""),
    frames.Auth(v=1, token="t" * 257),
    frames.Ping(id=-1),
    frames.Ping(id=2**53 + 1),
    frames.Ack(up_to=-1),
    frames.Ack(up_to=2**53),
    _receipt(message=""),
    _receipt(message="m" * 65),
    _receipt(hash=bytes(31)),
    _receipt(signature=bytes(63)),
    _receipt(at=-1),
]


@pytest.mark.parametrize("frame", VALID_AT_LIMIT, ids=lambda f: type(f).__name__)
def test_values_at_the_limit_decode(frame: frames.Frame) -> None:
    assert codec.decode_client_frame(codec.encode(frame)) == frame


@pytest.mark.parametrize("frame", DECODED_BUT_REFUSED, ids=lambda f: type(f).__name__)
def test_counts_past_their_limit_decode_for_the_handler_to_refuse(frame: frames.Frame) -> None:
    assert codec.decode_client_frame(codec.encode(frame)) == frame


@pytest.mark.parametrize("frame", INVALID_PAST_LIMIT, ids=lambda f: type(f).__name__)
def test_values_past_the_limit_are_malformed(frame: frames.Frame) -> None:
    with pytest.raises(errors.MalformedFrame):
        codec.decode_client_frame(codec.encode(frame))


# --- fuzzing ----------------------------------------------------------------------


def _decode_both(data: bytes | str) -> None:
    for decode in (codec.decode_client_frame, codec.decode_server_frame):
        try:
            decode(data)
        except errors.LienError as error:
            assert error.code in {"malformed-frame", "unknown-frame-type", "frame-too-large"}


@FUZZ
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_lien_errors(data: bytes) -> None:
    _decode_both(data)


@FUZZ
@given(st.text(st.characters(codec="utf-8", exclude_categories=()), max_size=256))
def test_arbitrary_text_raises_only_lien_errors(data: str) -> None:
    _decode_both(data)


_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_known_tags = sorted(_tags(frames.ClientFrame) | _tags(frames.ServerFrame))
_all_frame_types = frames.ClientFrame.__args__ + frames.ServerFrame.__args__  # type: ignore[attr-defined]
_field_names = st.sampled_from(sorted({name for cls in _all_frame_types for name in cls.__struct_fields__}))


@FUZZ
@given(
    st.one_of(st.sampled_from(_known_tags), _json),
    st.dictionaries(_field_names | st.text(max_size=8), _json, max_size=6),
)
def test_frame_shaped_json_raises_only_lien_errors(tag: object, fields: dict[str, object]) -> None:
    _decode_both(msgspec.json.encode({"type": tag, **fields}))


@FUZZ
@given(st.sampled_from(CLIENT_FRAMES + SERVER_FRAMES), st.data())
def test_damaged_frames_raise_only_lien_errors(frame: frames.Frame, data: st.DataObject) -> None:
    encoded = bytearray(codec.encode(frame))
    position = data.draw(st.integers(0, len(encoded) - 1))
    encoded[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    _decode_both(bytes(encoded[:cut]))

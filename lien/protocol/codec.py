"""The only place that turns frames into bytes and bytes into frames.

Decoding validates the type, every field and every size in one pass and
raises a :mod:`lien.protocol.errors` type with a stable code on failure.
"""

from __future__ import annotations

from typing import Any

import msgspec

from lien.protocol import errors, limits
from lien.protocol.frames import ClientFrame, Frame, ServerFrame

_encoder = msgspec.json.Encoder()
_client_decoder = msgspec.json.Decoder(ClientFrame)
_server_decoder = msgspec.json.Decoder(ServerFrame)
_tag_only = msgspec.json.Decoder(dict[str, object])

_CLIENT_TAGS = frozenset(t.__struct_config__.tag for t in ClientFrame.__args__)
_SERVER_TAGS = frozenset(t.__struct_config__.tag for t in ServerFrame.__args__)


def encode(frame: Frame) -> bytes:
    return _encoder.encode(frame)


def encode_text(frame: Frame) -> str:
    return _encoder.encode(frame).decode()


def _decode(
    data: bytes | str,
    decoder: msgspec.json.Decoder[Any],
    known_tags: frozenset[object],
) -> Any:
    # A str frame of more than MAX_FRAME_BYTES / 4 characters may exceed it once encoded: count bytes then.
    size = (
        len(data)
        if isinstance(data, bytes) or len(data) * 4 <= limits.MAX_FRAME_BYTES
        else len(data.encode())
    )
    if size > limits.MAX_FRAME_BYTES:
        raise errors.FrameTooLarge(f"Frames are limited to {limits.MAX_FRAME_BYTES} bytes.")
    if isinstance(data, str):
        # The limit is in bytes: a text frame of multi-byte characters is longer than its len().
        try:
            data = data.encode()
        except UnicodeEncodeError:
            raise errors.MalformedFrame("The frame is not valid UTF-8.") from None
        if len(data) > limits.MAX_FRAME_BYTES:
            raise errors.FrameTooLarge(f"Frames are limited to {limits.MAX_FRAME_BYTES} bytes.")
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        tag = _frame_tag(data)
        if isinstance(tag, str) and tag not in known_tags:
            raise errors.UnknownFrameType(f"Unknown frame type {tag!r}.") from None
        raise errors.MalformedFrame(f"Invalid frame: {exc}.") from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        # msgspec reports invalid UTF-8 inside a JSON string as a UnicodeDecodeError.
        raise errors.MalformedFrame("The frame is not valid JSON.") from None


def _frame_tag(data: bytes) -> object:
    try:
        parsed = _tag_only.decode(data)
    except (msgspec.MsgspecError, UnicodeDecodeError):
        return None
    return parsed.get("type")


def decode_client_frame(data: bytes | str) -> ClientFrame:
    """Decode a frame sent by a client; raises a LienError on any defect."""
    frame: ClientFrame = _decode(data, _client_decoder, _CLIENT_TAGS)
    return frame


def decode_server_frame(data: bytes | str) -> ServerFrame:
    """Decode a frame sent by a server; raises a LienError on any defect."""
    frame: ServerFrame = _decode(data, _server_decoder, _SERVER_TAGS)
    return frame

"""The client side of a connection, without I/O: frames in, events and frames out.

The asyncio SDK, the load-test users and the tests drive this same object.
It remembers what was sent and neither ``accepted`` nor refused (to resend after
a reconnect, with the same client message id, so nothing is delivered twice),
and what was received and not yet acked (docs/protocol.md §6).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from lien.protocol import codec, errors, frames, limits


@dataclass(frozen=True)
class Connected:
    ready: frames.Ready


@dataclass(frozen=True)
class SendAccepted:
    accepted: frames.Accepted


@dataclass(frozen=True)
class SendRefused:
    client_id: str
    error: errors.LienError


@dataclass(frozen=True)
class InboxItem:
    """A message or a status from the inbox; call :meth:`ClientProtocol.handled` once it is safe."""

    frame: frames.Deliver | frames.Status | frames.GroupEvent


@dataclass(frozen=True)
class Ephemeral:
    frame: frames.TypingEvent | frames.Presence | frames.DevicesChanged | frames.PrekeysLow | frames.Pong


@dataclass(frozen=True)
class ServerError:
    """An error not tied to a pending send (``ref`` may name a receipt's message)."""

    error: errors.LienError
    ref: str | None


Event = Connected | SendAccepted | SendRefused | InboxItem | Ephemeral | ServerError


class ClientProtocol:
    def __init__(self) -> None:
        self._pending: OrderedDict[str, bytes] = OrderedDict()
        self._handled_seq = 0
        self._acked_seq = 0
        self.ready: frames.Ready | None = None

    # --- outgoing --------------------------------------------------------

    def auth(self, token: str) -> bytes:
        self.ready = None
        return codec.encode(frames.Auth(v=limits.PROTOCOL_VERSION, token=token))

    def send(self, frame: frames.Send | frames.GroupSend | frames.Resend) -> bytes:
        """Encode a send and remember it until it is accepted or refused."""
        data = codec.encode(frame)
        self._pending[frame.id] = data
        return data

    def forget(self, client_id: str) -> None:
        """Stop remembering a send (abandoned by the application); refused sends are forgotten already."""
        self._pending.pop(client_id, None)

    def pending_sends(self) -> list[bytes]:
        """Everything not yet accepted, in the order it was first sent (resend after reconnect)."""
        return list(self._pending.values())

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def handled(self, seq: int) -> None:
        """The application has safely taken inbox entry ``seq`` (entries arrive in order)."""
        self._handled_seq = max(self._handled_seq, seq)

    def ack(self, *, at_least: int = 1) -> bytes | None:
        """An ack frame when ``at_least`` entries were handled since the last one, else None."""
        if self._handled_seq - self._acked_seq < at_least or self._handled_seq <= self._acked_seq:
            return None
        self._acked_seq = self._handled_seq
        return codec.encode(frames.Ack(up_to=self._handled_seq))

    @property
    def unacked(self) -> int:
        return self._handled_seq - self._acked_seq

    # --- incoming --------------------------------------------------------

    def receive(self, data: bytes | str) -> Event:
        frame = codec.decode_server_frame(data)
        match frame:
            case frames.Ready():
                self.ready = frame
                # The server resumes after what it saw acked; anything handled
                # but unacked here is delivered again and deduplicated above.
                self._handled_seq = self._acked_seq = 0
                return Connected(frame)
            case frames.Accepted():
                self._pending.pop(frame.id, None)
                return SendAccepted(frame)
            case frames.Deliver() | frames.Status() | frames.GroupEvent():
                return InboxItem(frame)
            case frames.Error():
                error = errors.error_from_wire(
                    frame.code, frame.message, details=frame.details, retry_after=frame.retry_after
                )
                if frame.ref is not None and self._pending.pop(frame.ref, None) is not None:
                    # Refused means not stored: a resend after reconnect would only be refused again.
                    return SendRefused(frame.ref, error)
                return ServerError(error, frame.ref)
            case (
                frames.TypingEvent()
                | frames.Presence()
                | frames.DevicesChanged()
                | frames.PrekeysLow()
                | frames.Pong()
            ):
                return Ephemeral(frame)
        raise errors.UnknownFrameType(f"Unexpected frame {type(frame).__name__}.")  # pragma: no cover

"""A member device's side of sender keys: receivers and distributions (§3.17.4, §3.17.7).

Each member device keeps a :class:`SenderKeyReceiver` per (group, sender
device): the sender keys that device distributed to it (at most two: the
current one and the previous one), each a forward-only chain. It installs
distributions from pairwise messages (:func:`accept_distribution`) and opens
group bodies (:meth:`SenderKeyReceiver.decrypt`), all-or-nothing.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from lien.crypto import primitives
from lien.crypto.errors import (
    ConversationMismatch,
    DecryptionFailed,
    IdentityMismatch,
    InvalidDistribution,
    SenderMismatch,
    UnknownSenderKey,
)
from lien.crypto.group_chain import (
    DEFAULT_SENDER_KEY_LIMITS,
    MAX_RECEIVED_KEYS,
    ReceiverChain,
    SenderKeyLimits,
)
from lien.crypto.group_state import ReceiverCore, decode_receiver, encode_receiver
from lien.crypto.group_wire import (
    DISTRIBUTION_CONTENT_TYPE,
    SenderKeyDistribution,
    check_group_id,
    group_associated_data,
    group_body_signing_input,
    parse_group_body,
)
from lien.crypto.keys import PublicIdentity
from lien.crypto.payload import (
    Conversation,
    ConversationKind,
    DeviceAddress,
    Payload,
    SignedGroupPayload,
    SignedPayload,
    check_group_delivery,
    decode_plaintext,
    verify_group_payload,
)


class SenderKeyReceiver:
    """What this device holds of one other device's sender keys in one group (§3.17.7).

    At most two sender keys, the most recently installed last: the current
    one, and the previous one for messages still in flight when the sender
    rotated. Built by :func:`accept_distribution` (or :meth:`create` then
    :meth:`install`) or :meth:`from_bytes`. ``repr`` shows no key.
    """

    __slots__ = ("_core", "_limits")

    def __init__(self, core: ReceiverCore, limits: SenderKeyLimits) -> None:
        self._core = core
        self._limits = limits

    @classmethod
    def create(
        cls,
        group_id: str,
        sender: DeviceAddress,
        sender_identity: PublicIdentity,
        *,
        limits: SenderKeyLimits = DEFAULT_SENDER_KEY_LIMITS,
    ) -> SenderKeyReceiver:
        """An empty receiver of ``sender``'s keys in ``group_id``; ``sender_identity`` signs its payloads."""
        check_group_id(group_id)
        if not isinstance(sender, DeviceAddress) or not isinstance(sender_identity, PublicIdentity):
            raise TypeError("sender is a DeviceAddress and sender_identity a PublicIdentity")
        return cls(ReceiverCore(group_id, sender, sender_identity, []), limits)

    @property
    def group_id(self) -> str:
        return self._core.group_id

    @property
    def sender(self) -> DeviceAddress:
        return self._core.sender

    @property
    def sender_identity(self) -> PublicIdentity:
        return self._core.sender_identity

    @property
    def key_ids(self) -> tuple[int, ...]:
        """The ``key_id`` of each sender key held, oldest first (the last is the current one)."""
        return tuple(chain.key_id for chain in self._core.chains)

    def install(self, distribution: bytes | SenderKeyDistribution) -> bool:
        """Add a sender key from its distribution (§3.17.4); ``True`` if added, ``False`` if already held.

        A ``key_id`` already held with the same signing key changes nothing
        (a repeated distribution must not rewind the chain). A new one becomes
        the current key; beyond two, the oldest is deleted. Raises
        :class:`~lien.crypto.errors.InvalidDistribution` for bytes that do not
        parse, another group's distribution, or a held ``key_id`` with another
        signing key; the receiver is then unchanged.
        """
        parsed = (
            distribution
            if isinstance(distribution, SenderKeyDistribution)
            else SenderKeyDistribution.decode(distribution)
        )
        if parsed.group_id != self._core.group_id:
            raise InvalidDistribution()
        for chain in self._core.chains:
            if chain.key_id == parsed.key_id:
                if not hmac.compare_digest(chain.signing_key, parsed.signing_key):
                    raise InvalidDistribution()
                return False
        chain = ReceiverChain(
            key_id=parsed.key_id,
            signing_key=parsed.signing_key,
            iteration=parsed.iteration,
            chain_key=parsed.chain_key,
        )
        self._core.chains = [*self._core.chains, chain][-MAX_RECEIVED_KEYS:]
        return True

    def forget_previous(self) -> None:
        """Delete every sender key but the current one (e.g. once in-flight messages had time to arrive)."""
        self._core.chains = self._core.chains[-1:]

    def decrypt(
        self, body: bytes, *, delivered_by: DeviceAddress, conversation: Conversation
    ) -> SignedGroupPayload:
        """Open a group body from this receiver's sender device and verify it (§3.17.7).

        ``delivered_by`` is the device the server says sent it;
        ``conversation`` the group the envelope came in
        (``Conversation.group(group_id)``). Raises a
        :class:`~lien.crypto.errors.CryptoError`, leaving the receiver
        unchanged, when anything is wrong: ``unknown-sender-key`` for a
        ``key_id`` not held (ask the sender for its current distribution),
        ``replayed-message``, ``too-many-skipped``, ``decryption-failed``,
        ``bad-signature``, ``malformed-payload``, ``sender-mismatch``,
        ``conversation-mismatch`` (§3.17.10).
        """
        core = self._core
        if delivered_by != core.sender:
            raise SenderMismatch()
        if conversation != Conversation.group(core.group_id):
            raise ConversationMismatch()
        parsed = parse_group_body(body)
        index = next((i for i, chain in enumerate(core.chains) if chain.key_id == parsed.key_id), None)
        if index is None:
            raise UnknownSenderKey()
        chain = core.chains[index]
        if not chain.verify(group_body_signing_input(core.group_id, parsed.signed_part), parsed.signature):
            raise DecryptionFailed()  # altered, or not made with this sender key
        working = chain.copy()
        message_key = working.message_key_for(parsed.iteration, self._limits)
        plaintext = primitives.aead_decrypt(
            message_key,
            parsed.ciphertext,
            group_associated_data(core.group_id, parsed.header),
            info=primitives.GROUP_MESSAGE_KEY_INFO,
        )
        payload_bytes, signature = decode_plaintext(plaintext)
        signer = core.sender_identity.signing_key
        payload = verify_group_payload(payload_bytes, signature, signer)
        check_group_delivery(payload, delivered_by=delivered_by, conversation=conversation)
        core.chains[index] = working
        return SignedGroupPayload(payload, payload_bytes, signature, signer)

    def to_bytes(self) -> bytes:
        """The whole state, chain and skipped keys included: store it only in the encrypted keystore."""
        return encode_receiver(self._core)

    @classmethod
    def from_bytes(
        cls, data: bytes, *, limits: SenderKeyLimits = DEFAULT_SENDER_KEY_LIMITS
    ) -> SenderKeyReceiver:
        """Restore a receiver; raises :class:`~lien.crypto.errors.GroupStateCorrupt` if invalid."""
        return cls(decode_receiver(data, limits), limits)

    def __repr__(self) -> str:
        core = self._core
        return (
            f"SenderKeyReceiver(group_id={core.group_id!r}, sender={core.sender!r}, key_ids={self.key_ids})"
        )


# --- distributions over pairwise sessions (§3.17.4) -----------------------------------------


def is_distribution(payload: Payload) -> bool:
    """Whether a decrypted pairwise payload carries a sender-key distribution (§3.17.4)."""
    return payload.content_type == DISTRIBUTION_CONTENT_TYPE


def accept_distribution(
    received: SignedPayload,
    *,
    sender_identity: PublicIdentity,
    receiver: SenderKeyReceiver | None,
    limits: SenderKeyLimits = DEFAULT_SENDER_KEY_LIMITS,
) -> SenderKeyReceiver:
    """Install the distribution a pairwise message carried; returns the receiver to store (§3.17.4).

    ``received`` is what :meth:`lien.crypto.session.Session.decrypt` returned;
    ``sender_identity`` the identity of its sender device (the session's
    ``peer_identity``); ``receiver`` what this device holds for that device
    in that group, or ``None``. The distribution must name the group the
    payload was signed for. Raises
    :class:`~lien.crypto.errors.InvalidDistribution` or
    :class:`~lien.crypto.errors.IdentityMismatch`, changing nothing; a
    ``receiver`` of another group or device is a ``ValueError``. ``receiver``
    itself is never modified: store the returned one.
    """
    payload = received.payload
    if not is_distribution(payload):
        raise ValueError("not a sender-key distribution: check is_distribution() first")
    if not hmac.compare_digest(received.signer, sender_identity.signing_key):
        raise IdentityMismatch()
    try:
        data = base64.b64decode(payload.text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidDistribution() from None
    distribution = SenderKeyDistribution.decode(data)
    if (
        payload.conversation.kind is not ConversationKind.GROUP
        or payload.conversation.id != distribution.group_id
    ):
        raise InvalidDistribution()
    if receiver is None:
        updated = SenderKeyReceiver.create(
            distribution.group_id, payload.sender, sender_identity, limits=limits
        )
    else:
        if receiver.group_id != distribution.group_id or receiver.sender != payload.sender:
            raise ValueError("this receiver belongs to another group or sender device")
        if receiver.sender_identity != sender_identity:
            raise IdentityMismatch()
        updated = SenderKeyReceiver.from_bytes(receiver.to_bytes(), limits=limits)
    updated.install(distribution)
    return updated

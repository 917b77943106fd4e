"""Sender keys for care-team groups: the API the SDK calls (docs/protocol-group.md §3.17).

Modelled on Signal's Sender Keys. Each device that writes in a group has a
:class:`SenderKey` for it: a random ``key_id``, a symmetric chain and an
Ed25519 key pair of its own. It hands a *distribution* (§3.17.4) to every
member device over their pairwise sessions (:meth:`SenderKey.distribution_payload`),
then encrypts each group message once (:meth:`SenderKey.encrypt`): one body
that the server fans out to all member devices.

Each member device keeps a :class:`SenderKeyReceiver` per (group, sender
device), filled from those distributions (:func:`accept_distribution`), and
opens bodies with :meth:`SenderKeyReceiver.decrypt`, which returns the
:class:`~lien.crypto.payload.SignedGroupPayload` to keep as proof (both in
:mod:`lien.crypto.group_receiver`, re-exported here: import everything from
this module).

When the membership changes, every sender replaces its sender key
(:meth:`SenderKey.rotate`) and distributes the new one to the current member
devices only (§3.17.9). Every operation is all-or-nothing; nothing here does
I/O: the caller stores ``to_bytes()`` in its encrypted keystore after every change.
"""

from __future__ import annotations

import base64
from typing import Final

import nacl.utils

from lien.crypto import primitives
from lien.crypto.errors import MessageTooLarge, SessionExhausted
from lien.crypto.group_chain import DEFAULT_SENDER_KEY_LIMITS, END_OF_CHAIN, SenderKeyLimits, SenderSigningKey
from lien.crypto.group_receiver import SenderKeyReceiver, accept_distribution, is_distribution
from lien.crypto.group_state import SenderKeyCore, decode_sender_key, encode_sender_key
from lien.crypto.group_wire import (
    DISTRIBUTION_CONTENT_TYPE,
    MAX_GROUP_BODY_BYTES,
    SIGNATURE_SIZE,
    SenderKeyDistribution,
    check_group_id,
    encode_group_header,
    group_associated_data,
    group_body_key_id,
    group_body_signing_input,
)
from lien.crypto.keys import IdentityKeyPair, PublicIdentity
from lien.crypto.payload import (
    Conversation,
    DeviceAddress,
    GroupPayload,
    Payload,
    encode_plaintext,
    sign_group_payload,
)
from lien.crypto.ratchet import RandomSource

__all__ = [
    "DEFAULT_SENDER_KEY_LIMITS",
    "DISTRIBUTION_CONTENT_TYPE",
    "SenderKey",
    "SenderKeyDistribution",
    "SenderKeyLimits",
    "SenderKeyReceiver",
    "accept_distribution",
    "group_body_key_id",
    "is_distribution",
]

KEY_ID_SIZE: Final = 4


def _os_random(size: int) -> bytes:
    return nacl.utils.random(size)


# --- the sender's side ---------------------------------------------------------------


class SenderKey:
    """This device's sender key in one group: what it encrypts group messages with (§3.17.2).

    Not built directly: use :meth:`create`, :meth:`rotate` or :meth:`from_bytes`.
    ``repr`` shows the group, ``key_id`` and iteration, never a key.
    """

    __slots__ = ("_core",)

    def __init__(self, core: SenderKeyCore) -> None:
        self._core = core

    @classmethod
    def create(cls, group_id: str, own: DeviceAddress, own_identity: PublicIdentity) -> SenderKey:
        """A fresh sender key for ``group_id``: random ``key_id``, chain key and signing key pair.

        ``own`` and ``own_identity`` are this device's address and public
        identity; :meth:`encrypt` checks the payload and signer against them.
        """
        return _create(group_id, own, own_identity, _os_random, avoid_key_id=None)

    def rotate(self) -> SenderKey:
        """A new sender key for the same group, with a ``key_id`` different from this one (§3.17.9).

        Call it whenever the group's member devices change, before the next
        message; distribute the result to the current member devices only, and
        replace this sender key with it in the keystore.
        """
        core = self._core
        return _create(core.group_id, core.own, core.own_identity, _os_random, avoid_key_id=core.key_id)

    @property
    def group_id(self) -> str:
        return self._core.group_id

    @property
    def own(self) -> DeviceAddress:
        return self._core.own

    @property
    def key_id(self) -> int:
        return self._core.key_id

    @property
    def iteration(self) -> int:
        """The iteration the next message will carry."""
        return self._core.iteration

    @property
    def signing_public_key(self) -> bytes:
        return self._core.signing_key.public_key

    def distribution(self) -> SenderKeyDistribution:
        """The distribution of this key at its current iteration (§3.17.4).

        A member device given it can read the messages sent from now on, not
        the earlier ones. Raises :class:`~lien.crypto.errors.SessionExhausted`
        when the chain is used up (rotate instead).
        """
        core = self._core
        if core.iteration >= END_OF_CHAIN:
            raise SessionExhausted()
        return SenderKeyDistribution(
            core.group_id, core.key_id, core.iteration, core.chain_key, core.signing_key.public_key
        )

    def distribution_payload(
        self, recipient: DeviceAddress, *, client_message_id: str, sent_at_ms: int
    ) -> Payload:
        """The pairwise payload that carries :meth:`distribution` to ``recipient`` (§3.17.4).

        Encrypt it with the pairwise session to that device
        (:meth:`lien.crypto.session.Session.encrypt`); the recipient passes
        what it decrypts to :func:`accept_distribution`.
        """
        text = base64.b64encode(self.distribution().encode()).decode("ascii")
        return Payload(
            self._core.own,
            recipient,
            Conversation.group(self._core.group_id),
            client_message_id,
            sent_at_ms,
            text,
            DISTRIBUTION_CONTENT_TYPE,
        )

    def encrypt(self, payload: GroupPayload, signer: IdentityKeyPair) -> bytes:
        """Sign ``payload`` with this device's identity key and encrypt it into one group body (§3.17.5).

        ``payload.sender`` must be this device, its group this key's group, and
        ``signer`` this device's identity (``ValueError`` otherwise: a
        programming error). Raises :class:`~lien.crypto.errors.SessionExhausted`
        after 2**32 messages (rotate) and
        :class:`~lien.crypto.errors.MessageTooLarge` for a body over 65,536
        bytes; the sender key is then unchanged.
        """
        core = self._core
        if not isinstance(payload, GroupPayload):
            raise TypeError("payload is a GroupPayload")
        if payload.sender != core.own or payload.group_id != core.group_id:
            raise ValueError("the payload must come from this device and belong to this key's group")
        if signer.public != core.own_identity:
            raise ValueError("the payload must be signed by this device's identity key")
        if core.iteration >= END_OF_CHAIN:
            raise SessionExhausted()
        plaintext = encode_plaintext(sign_group_payload(signer, payload))
        header = encode_group_header(core.key_id, core.iteration)
        next_chain_key, message_key = primitives.kdf_ck(core.chain_key)
        ciphertext = primitives.aead_encrypt(
            message_key,
            plaintext,
            group_associated_data(core.group_id, header),
            info=primitives.GROUP_MESSAGE_KEY_INFO,
        )
        if len(header) + len(ciphertext) + SIGNATURE_SIZE > MAX_GROUP_BODY_BYTES:
            raise MessageTooLarge()
        signature = core.signing_key.sign(group_body_signing_input(core.group_id, header + ciphertext))
        core.chain_key = next_chain_key
        core.iteration += 1
        return header + ciphertext + signature

    def to_bytes(self) -> bytes:
        """The whole state, signing seed included: store it only in the encrypted keystore."""
        return encode_sender_key(self._core)

    @classmethod
    def from_bytes(cls, data: bytes) -> SenderKey:
        """Restore a sender key; raises :class:`~lien.crypto.errors.GroupStateCorrupt` if invalid."""
        return cls(decode_sender_key(data))

    def __repr__(self) -> str:
        core = self._core
        return f"SenderKey(group_id={core.group_id!r}, key_id={core.key_id}, iteration={core.iteration})"


def _create(
    group_id: str,
    own: DeviceAddress,
    own_identity: PublicIdentity,
    random_source: RandomSource,
    *,
    avoid_key_id: int | None,
) -> SenderKey:
    """Draw, in this order: the 4-byte ``key_id`` (again while it equals ``avoid_key_id``), the 32-byte
    chain key, the 32-byte Ed25519 seed (§3.17.2)."""
    check_group_id(group_id)
    if not isinstance(own, DeviceAddress) or not isinstance(own_identity, PublicIdentity):
        raise TypeError("own is a DeviceAddress and own_identity a PublicIdentity")
    key_id = int.from_bytes(random_source(KEY_ID_SIZE), "big")
    while key_id == avoid_key_id:
        key_id = int.from_bytes(random_source(KEY_ID_SIZE), "big")
    chain_key = random_source(primitives.KEY_SIZE)
    signing_key = SenderSigningKey.from_seed(random_source(primitives.KEY_SIZE))
    return SenderKey(SenderKeyCore(group_id, own, own_identity, key_id, 0, chain_key, signing_key))

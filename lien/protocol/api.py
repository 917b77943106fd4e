"""Bodies of the HTTP API, defined once (docs/protocol.md §4).

Requests are validated by msgspec on decode, like frames; responses are
encoded from the same structs. Keys travel as standard base64.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from lien.protocol import limits
from lien.protocol.frames import DeviceId, GroupId, Millis, Username

PublicKey = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
Signature = Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]
PrekeyId = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
Password = Annotated[
    str, msgspec.Meta(min_length=limits.MIN_PASSWORD_CHARS, max_length=limits.MAX_PASSWORD_CHARS)
]
ProfileText = Annotated[str, msgspec.Meta(max_length=limits.MAX_PROFILE_FIELD_CHARS)]
PractitionerId = Annotated[str, msgspec.Meta(max_length=11, pattern=r"^([0-9]{9}|[0-9]{11})?$")]
"""An RPPS number (11 digits) or an ADELI number (9 digits), or empty."""


class Body(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class Profile(Body, frozen=True, kw_only=True):
    """What a health professional shows colleagues."""

    display_name: Annotated[str, msgspec.Meta(min_length=1, max_length=limits.MAX_PROFILE_FIELD_CHARS)]
    profession: ProfileText = ""
    rpps: PractitionerId = ""
    organisation: ProfileText = ""
    city: ProfileText = ""
    unlisted: bool = False
    """"Liste rouge": not found by the directory search, yet reachable by anyone who knows the username."""


class ProfileUpdate(Body, frozen=True, kw_only=True):
    display_name: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=limits.MAX_PROFILE_FIELD_CHARS)] | None
    ) = None
    profession: ProfileText | None = None
    rpps: PractitionerId | None = None
    organisation: ProfileText | None = None
    city: ProfileText | None = None
    unlisted: bool | None = None


class SignedPrekey(Body, frozen=True):
    id: PrekeyId
    key: PublicKey
    signature: Signature
    """Ed25519 signature by the device's identity signing key (docs/protocol-crypto.md §3.2)."""


class OneTimePrekey(Body, frozen=True):
    id: PrekeyId
    key: PublicKey


class DeviceRegistration(Body, frozen=True, kw_only=True):
    """A new device's public keys. Private keys never leave the device."""

    name: Annotated[str, msgspec.Meta(max_length=limits.MAX_DEVICE_NAME_CHARS)] = ""
    identity_signing_key: PublicKey
    """Ed25519 public key."""
    identity_exchange_key: PublicKey
    """X25519 public key."""
    signed_prekey: SignedPrekey
    prekeys: list[OneTimePrekey] = []
    """At most ``limits.MAX_PREKEYS_PER_UPLOAD``, else ``too-many-prekeys``."""


class RegisterRequest(Body, frozen=True, kw_only=True):
    username: Username
    password: Password
    profile: Profile
    device: DeviceRegistration
    invite: Annotated[str, msgspec.Meta(max_length=128)] | None = None


class LoginRequest(Body, frozen=True, kw_only=True):
    """Sign in either an existing device of the account (``device_id``) or a new one (``device``)."""

    username: Username
    password: Annotated[str, msgspec.Meta(max_length=limits.MAX_PASSWORD_CHARS)]
    device_id: DeviceId | None = None
    device: DeviceRegistration | None = None


class SessionGrant(Body, frozen=True):
    token: str
    user: str
    device: int
    expires_at: Millis


class Account(Body, frozen=True):
    user: str
    profile: Profile
    created_at: Millis


class PublicProfile(Body, frozen=True):
    user: str
    profile: Profile


class DirectoryPage(Body, frozen=True):
    """One page of a directory search; pass ``next`` as ``cursor`` for the following page."""

    results: list[PublicProfile]
    next: str | None = None


class DeviceIdentity(Body, frozen=True):
    """A device's long-term public keys, as listed without claiming anything."""

    device: int
    identity_signing_key: bytes
    identity_exchange_key: bytes


class MyDevice(Body, frozen=True):
    device: int
    name: str
    created_at: Millis
    current: bool
    """The device making the request."""


class MyDevices(Body, frozen=True):
    devices: list[MyDevice]


class DeviceRemoval(Body, frozen=True, kw_only=True):
    """``DELETE /v1/devices/{id}``: the account's password again, so that a token alone cannot do it."""

    password: Annotated[str, msgspec.Meta(max_length=limits.MAX_PASSWORD_CHARS)]


class DeviceList(Body, frozen=True):
    user: str
    devices: list[DeviceIdentity]


class KeyBundle(Body, frozen=True):
    """Everything needed to start a session with one device (X3DH, docs/protocol.md §3)."""

    device: int
    identity_signing_key: bytes
    identity_exchange_key: bytes
    signed_prekey: SignedPrekey
    prekey: OneTimePrekey | None
    """The claimed one-time prekey, handed to this claimer only; None when exhausted."""


class KeyBundles(Body, frozen=True):
    user: str
    bundles: list[KeyBundle]


class KeyClaim(Body, frozen=True):
    """Optional body of a key claim: only these devices' bundles (default: every device)."""

    devices: Annotated[list[DeviceId], msgspec.Meta(min_length=1, max_length=limits.MAX_DEVICES_PER_USER)]


class PrekeyUpload(Body, frozen=True):
    prekeys: Annotated[
        list[OneTimePrekey], msgspec.Meta(min_length=1, max_length=limits.MAX_PREKEYS_PER_UPLOAD)
    ]


class PrekeyStatus(Body, frozen=True):
    remaining: int
    replenish: bool


class ReceiptRecord(Body, frozen=True):
    device: int
    user: str
    kind: str
    at: Millis


class MessageReceipts(Body, frozen=True):
    message: str
    receipts: list[ReceiptRecord]


GroupName = Annotated[str, msgspec.Meta(min_length=1, max_length=limits.MAX_GROUP_NAME_CHARS)]
Role = Literal["owner", "admin", "member"]


class GroupCreate(Body, frozen=True):
    name: GroupName
    members: Annotated[list[Username], msgspec.Meta(max_length=limits.MAX_GROUP_MEMBERS_CEILING)] = []
    """Everyone but the creator, who becomes the owner."""


class GroupMember(Body, frozen=True):
    user: str
    role: Role
    joined_at: Millis


class GroupInfo(Body, frozen=True):
    id: GroupId
    name: str
    epoch: int
    """The membership epoch: a group message names it (``group_send.epoch``)."""
    created_at: Millis
    members: list[GroupMember]


class GroupList(Body, frozen=True):
    groups: list[GroupInfo]


class MemberAdd(Body, frozen=True):
    user: Username
    role: Literal["admin", "member"] = "member"


class RoleChange(Body, frozen=True):
    role: Role
    """``owner`` hands the ownership over (the previous owner becomes an admin)."""


class GroupRename(Body, frozen=True):
    name: GroupName


class LedgerKey(Body, frozen=True):
    key_id: str
    public_key: bytes
    first_used_at: Millis | None
    """When it first signed a head; None for a node's key that has signed nothing yet."""


class LedgerKeys(Body, frozen=True):
    keys: list[LedgerKey]


class ErrorBody(Body, frozen=True):
    code: str
    message: str
    retry_after: float | None = None
    details: dict[str, object] | None = None


class ErrorResponse(Body, frozen=True):
    error: ErrorBody

"""The key directory: device lists, key bundles with one-time prekey claims, prekey uploads."""

from __future__ import annotations

from lien.crypto.keys import verify_signed_prekey
from lien.protocol import errors, frames, limits
from lien.protocol.api import (
    DeviceIdentity,
    DeviceList,
    KeyBundle,
    KeyBundles,
    PrekeyStatus,
    PrekeyUpload,
    SignedPrekey,
)
from lien.protocol.codec import encode
from server.broker import BrokerUnavailable
from server.handlers.users import resolve_user
from server.services import Caller, Services
from server.storage import devices, messages
from server.ws import notices


async def device_list(services: Services, username: str) -> DeviceList:
    async with services.database.read() as connection:
        user_id = await resolve_user(services, connection, username)
        rows = await devices.devices_of(connection, [user_id])
    return DeviceList(
        user=username,
        devices=[
            DeviceIdentity(
                device=row.id,
                identity_signing_key=row.identity_signing_key,
                identity_exchange_key=row.identity_exchange_key,
            )
            for row in rows
        ],
    )


async def claim_bundles(
    services: Services, caller: Caller, username: str, only: list[int] | None = None
) -> KeyBundles:
    """One bundle per device of ``username`` (or those in ``only``); each one-time prekey goes to one claimer.

    Devices named in ``only`` that the user does not have are left out: the
    caller learns from the answer which devices exist.
    """
    low: list[tuple[int, int]] = []
    async with services.database.write() as connection:
        user_id = await resolve_user(services, connection, username)
        rows = await devices.devices_of(connection, [user_id])
        bundles = []
        for row in rows:
            if row.id == caller.device_id or (only is not None and row.id not in only):
                continue
            prekey = await devices.claim_one_time_prekey(connection, row.id)
            remaining = await devices.count_prekeys(connection, row.id)
            if remaining < limits.PREKEY_REPLENISH_BELOW:
                low.append((row.id, remaining))
            bundles.append(
                KeyBundle(
                    device=row.id,
                    identity_signing_key=row.identity_signing_key,
                    identity_exchange_key=row.identity_exchange_key,
                    signed_prekey=row.signed_prekey,
                    prekey=prekey,
                )
            )
    for device_id, remaining in low:
        try:
            await services.broker.publish(
                notices.device_channel(device_id),
                notices.ephemeral(encode(frames.PrekeysLow(remaining=remaining))),
            )
        except BrokerUnavailable:
            services.metrics.broker_failures.inc()
    return KeyBundles(user=username, bundles=bundles)


async def upload_prekeys(services: Services, caller: Caller, upload: PrekeyUpload) -> PrekeyStatus:
    if len(upload.prekeys) > limits.MAX_PREKEYS_PER_UPLOAD:
        raise errors.TooManyPrekeys(f"At most {limits.MAX_PREKEYS_PER_UPLOAD} one-time prekeys per upload.")
    if len({p.id for p in upload.prekeys}) != len(upload.prekeys):
        raise errors.InvalidRequest("One-time prekey ids must be distinct.")
    async with services.database.write() as connection:
        stored = await devices.count_prekeys(connection, caller.device_id)
        if stored + len(upload.prekeys) > limits.MAX_PREKEYS_STORED:
            raise errors.TooManyPrekeys(
                f"A device may store at most {limits.MAX_PREKEYS_STORED} one-time prekeys ({stored} stored)."
            )
        await devices.add_prekeys(connection, caller.device_id, upload.prekeys)
        remaining = await devices.count_prekeys(connection, caller.device_id)
    return PrekeyStatus(remaining=remaining, replenish=remaining < limits.PREKEY_REPLENISH_BELOW)


async def prekey_status(services: Services, caller: Caller) -> PrekeyStatus:
    async with services.database.read() as connection:
        remaining = await devices.count_prekeys(connection, caller.device_id)
    return PrekeyStatus(remaining=remaining, replenish=remaining < limits.PREKEY_REPLENISH_BELOW)


async def rotate_signed_prekey(services: Services, caller: Caller, prekey: SignedPrekey) -> None:
    async with services.database.write() as connection:
        device = await devices.get_device(connection, caller.device_id)
        if device is None:
            raise errors.AuthenticationFailed()
        if not verify_signed_prekey(device.identity_signing_key, prekey.id, prekey.key, prekey.signature):
            raise errors.InvalidPrekeySignature()
        await devices.set_signed_prekey(connection, caller.device_id, prekey)


async def announce_devices_changed(services: Services, user_id: int, username: str) -> None:
    """Tell the user's contacts and other devices that its device list changed (ephemeral, best effort).

    Offline devices learn it anyway: a send with a stale device list is
    refused with ``devices-mismatch``, and a message from an unknown device
    makes the receiver refresh the list.
    """
    async with services.database.read() as connection:
        audience = [user_id, *await messages.contacts_of(connection, user_id)]
    notice = notices.ephemeral(encode(frames.DevicesChanged(user=username)))
    try:
        await services.broker.publish_many([(notices.user_channel(member), notice) for member in audience])
    except BrokerUnavailable:
        services.metrics.broker_failures.inc()

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
from server.handlers.accounts import resolve_user
from server.services import Caller, Services
from server.storage import devices
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


async def claim_bundles(services: Services, caller: Caller, username: str) -> KeyBundles:
    """One bundle per device of ``username``, each with a one-time prekey handed to this caller only."""
    low: list[tuple[int, int]] = []
    async with services.database.write() as connection:
        user_id = await resolve_user(services, connection, username)
        rows = await devices.devices_of(connection, [user_id])
        bundles = []
        for row in rows:
            if row.id == caller.device_id:
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

"""Registration, login, logout, authentication, profiles and invites."""

from __future__ import annotations

import math

from sqlalchemy.ext.asyncio import AsyncConnection

from lien import ledger as chain
from lien.crypto.keys import verify_signed_prekey
from lien.protocol import errors, limits
from lien.protocol.api import (
    Account,
    DeviceRegistration,
    LoginRequest,
    MyDevice,
    MyDevices,
    ProfileUpdate,
    PublicProfile,
    RegisterRequest,
    SessionGrant,
)
from server.broker import BrokerUnavailable
from server.handlers import groups, keys
from server.handlers.passwords import hash_password, verify_password
from server.handlers.tokens import invite_hash, new_invite_code, new_token, token_hash
from server.services import Caller, Services
from server.storage import accounts, devices, ledger
from server.ws import notices

INVITE_TTL_MS = 14 * 24 * 3600 * 1000


def check_device_registration(registration: DeviceRegistration) -> None:
    prekey = registration.signed_prekey
    if not verify_signed_prekey(registration.identity_signing_key, prekey.id, prekey.key, prekey.signature):
        raise errors.InvalidPrekeySignature()
    if len(registration.prekeys) > limits.MAX_PREKEYS_PER_UPLOAD:
        raise errors.TooManyPrekeys(f"At most {limits.MAX_PREKEYS_PER_UPLOAD} one-time prekeys per upload.")
    if len({p.id for p in registration.prekeys}) != len(registration.prekeys):
        raise errors.InvalidRequest("One-time prekey ids must be distinct.")


async def register(services: Services, request: RegisterRequest) -> SessionGrant:
    check_device_registration(request.device)
    if not services.settings.open_registration and request.invite is None:
        raise errors.RegistrationClosed()
    password_hash = await hash_password(request.password)
    now = services.clock()
    token = new_token()
    async with services.database.write() as connection:
        user_id = await accounts.create_user(
            connection,
            username=request.username,
            password_hash=password_hash,
            profile=request.profile,
            now=now,
        )
        if request.invite is not None and not await accounts.consume_invite(
            connection, code_hash=invite_hash(request.invite), user_id=user_id, now=now
        ):
            raise errors.InvalidInvite()
        device_id = await devices.add_device(
            connection, user_id=user_id, registration=request.device, now=now
        )
        await _record_device(connection, request.username, device_id, request.device, now)
        expires_at = await _open_session(services, connection, user_id, device_id, token, now)
    services.user_ids[request.username] = user_id
    return SessionGrant(token=token, user=request.username, device=device_id, expires_at=expires_at)


async def login(services: Services, request: LoginRequest) -> SessionGrant:
    if (request.device is None) == (request.device_id is None):
        raise errors.InvalidRequest("Give either device_id (an existing device) or device (a new one).")
    if request.device is not None:
        check_device_registration(request.device)
    async with services.database.read() as connection:
        user = await accounts.user_by_username(connection, request.username)
    matches = await password_matches(
        services, request.username, user.password_hash if user else None, request.password
    )
    if not matches or user is None:
        raise errors.InvalidCredentials()
    now = services.clock()
    token = new_token()
    async with services.database.write() as connection:
        if request.device_id is not None:
            device = await devices.get_device(connection, request.device_id)
            if device is None or device.user_id != user.id:
                raise errors.UnknownDevice()
            device_id = device.id
        else:
            assert request.device is not None
            if await devices.count_devices(connection, user.id) >= limits.MAX_DEVICES_PER_USER:
                raise errors.TooManyDevices()
            device_id = await devices.add_device(
                connection, user_id=user.id, registration=request.device, now=now
            )
            await _record_device(connection, user.username, device_id, request.device, now)
        expires_at = await _open_session(services, connection, user.id, device_id, token, now)
    if request.device is not None:
        await keys.announce_devices_changed(services, user.id, user.username)
        caller = Caller(user_id=user.id, username=user.username, device_id=device_id, session_id=0)
        await groups.devices_changed(services, caller)
    return SessionGrant(token=token, user=user.username, device=device_id, expires_at=expires_at)


async def password_matches(
    services: Services, username: str, password_hash: str | None, password: str
) -> bool:
    """Check a password typed for ``username``, as one of its counted attempts (protocol §4.4).

    The attempt is taken before any hashing, ``rate-limited`` past the
    account's bucket, whether the account exists or not (``password_hash``
    None); a right password gives it back. A guesser gets
    ``PASSWORD_ATTEMPTS_BURST`` wrong tries, then one a minute, and costs the
    node no argon2id work meanwhile.
    """
    grant = await services.password_limiter.take(username, 1)
    if not grant.granted:
        raise errors.RateLimited(
            f"Too many password attempts on this account; retry in {math.ceil(grant.retry_after)} s.",
            retry_after=grant.retry_after,
        )
    if not await verify_password(password_hash, password):
        return False
    await services.password_limiter.give_back(username, 1)
    return True


async def _record_device(
    connection: AsyncConnection, username: str, device_id: int, registration: DeviceRegistration, now: int
) -> None:
    """The ledger keeps every device's identity keys: proofs check signatures against them (§10.1)."""
    entry = chain.DeviceRegistered(
        user=username,
        device=device_id,
        signing_key=registration.identity_signing_key,
        exchange_key=registration.identity_exchange_key,
        at=now,
    )
    await ledger.append(connection, [(entry, f"d{device_id}")], now)


async def _open_session(
    services: Services, connection: AsyncConnection, user_id: int, device_id: int, token: str, now: int
) -> int:
    expires_at = now + services.settings.session_ttl_seconds * 1000
    await accounts.create_session(
        connection,
        user_id=user_id,
        device_id=device_id,
        token_hash=token_hash(token),
        now=now,
        expires_at=expires_at,
    )
    return expires_at


async def authenticate(services: Services, token: str) -> Caller:
    """The caller behind a session token, or AuthenticationFailed."""
    now = services.clock()
    async with services.database.read() as connection:
        owner = await accounts.live_session_owner(connection, token_hash(token), now)
    if owner is None:
        raise errors.AuthenticationFailed()
    return Caller(
        user_id=owner.session.user_id,
        username=owner.username,
        device_id=owner.session.device_id,
        session_id=owner.session.id,
        expires_at=owner.session.expires_at,
    )


async def logout(services: Services, caller: Caller) -> None:
    """Revoke this session; sockets opened with it close (``auth-failed``)."""
    async with services.database.write() as connection:
        await accounts.revoke_session(connection, caller.session_id, services.clock())
    await _publish(services, notices.device_channel(caller.device_id), notices.revoked(caller.session_id))


async def my_devices(services: Services, caller: Caller) -> MyDevices:
    async with services.database.read() as connection:
        rows = await devices.devices_of(connection, [caller.user_id])
    return MyDevices(
        devices=[
            MyDevice(
                device=row.id, name=row.name, created_at=row.created_at, current=row.id == caller.device_id
            )
            for row in rows
        ]
    )


async def remove_device(services: Services, caller: Caller, device_id: int, password: str) -> None:
    """Sign a device of this account out for good (a lost phone): sessions, keys and inbox go.

    The account's password is checked first: a stolen session token alone
    must not be able to sign the owner's other devices out. Then the
    device's sockets close, correspondents and groups learn that the device
    list changed, and no message is addressed to it any more.
    """
    async with services.database.read() as connection:
        user = await accounts.user_by_id(connection, caller.user_id)
    if user is None:
        raise errors.AuthenticationFailed()
    if not await password_matches(services, caller.username, user.password_hash, password):
        raise errors.InvalidPassword()
    async with services.database.write() as connection:
        device = await devices.get_device(connection, device_id)
        if device is None or device.user_id != caller.user_id:
            raise errors.UnknownDevice()
        now = services.clock()
        await accounts.revoke_device_sessions(connection, device_id, now)
        await devices.remove_device(connection, device_id, now)
        removed = chain.DeviceRemoved(user=caller.username, device=device_id, at=now)
        await ledger.append(connection, [(removed, f"d{device_id}")], now)
    await _publish(services, notices.device_channel(device_id), notices.revoked(None))
    await keys.announce_devices_changed(services, caller.user_id, caller.username)
    await groups.devices_changed(services, caller)


async def _publish(services: Services, channel: str, payload: bytes) -> None:
    try:
        await services.broker.publish(channel, payload)
    except BrokerUnavailable:
        services.metrics.broker_failures.inc()


async def my_account(services: Services, caller: Caller) -> Account:
    async with services.database.read() as connection:
        user = await accounts.user_by_id(connection, caller.user_id)
    if user is None:
        raise errors.AuthenticationFailed()
    return Account(user=user.username, profile=user.profile, created_at=user.created_at)


async def update_profile(services: Services, caller: Caller, update: ProfileUpdate) -> Account:
    changes = {
        name: value
        for name in ("display_name", "profession", "rpps", "organisation", "city", "unlisted")
        if (value := getattr(update, name)) is not None
    }
    async with services.database.write() as connection:
        await accounts.update_profile(connection, caller.user_id, changes)
    return await my_account(services, caller)


async def public_profile(services: Services, username: str) -> PublicProfile:
    async with services.database.read() as connection:
        user = await accounts.user_by_username(connection, username)
    if user is None:
        raise errors.UnknownUser()
    return PublicProfile(user=user.username, profile=user.profile)


async def create_invite(services: Services, *, note: str = "", ttl_ms: int = INVITE_TTL_MS) -> str:
    """A new invite code, returned once; only its hash is stored."""
    code = new_invite_code()
    now = services.clock()
    async with services.database.write() as connection:
        await accounts.create_invite(
            connection, code_hash=invite_hash(code), note=note, now=now, expires_at=now + ttl_ms
        )
    return code

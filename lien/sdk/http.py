"""The HTTP half of the SDK: accounts and the key directory (docs/protocol.md §4)."""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from lien.ledger import Proof
from lien.protocol import errors
from lien.protocol.api import (
    Account,
    DeviceList,
    DeviceRegistration,
    DeviceRemoval,
    DirectoryPage,
    ErrorResponse,
    GroupCreate,
    GroupInfo,
    GroupList,
    GroupRename,
    KeyBundles,
    KeyClaim,
    LoginRequest,
    MemberAdd,
    MessageReceipts,
    MyDevices,
    OneTimePrekey,
    PrekeyStatus,
    PrekeyUpload,
    Profile,
    PublicProfile,
    RegisterRequest,
    RoleChange,
    SessionGrant,
)

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


class ApiClient:
    """Thin typed calls over httpx; server errors come back as their typed LienError."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, response_type: type[T] | None, body: Any = None
    ) -> T | None:
        headers = {"content-type": "application/json"}
        if self.token is not None:
            headers["authorization"] = f"Bearer {self.token}"
        content = None if body is None else _encoder.encode(body)
        try:
            response = await self._http.request(method, path, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise ConnectionError(f"cannot reach {self.base_url}: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise _error_from(response)
        if response_type is None:
            return None
        return msgspec.json.decode(response.content, type=response_type)

    async def register(self, request: RegisterRequest) -> SessionGrant:
        grant = await self._call("POST", "/v1/register", SessionGrant, request)
        assert grant is not None
        return grant

    async def login(self, request: LoginRequest) -> SessionGrant:
        grant = await self._call("POST", "/v1/login", SessionGrant, request)
        assert grant is not None
        return grant

    async def logout(self) -> None:
        await self._call("POST", "/v1/logout", None)

    async def me(self) -> Account:
        account = await self._call("GET", "/v1/me", Account)
        assert account is not None
        return account

    async def profile(self, username: str) -> PublicProfile:
        profile = await self._call("GET", f"/v1/users/{username}", PublicProfile)
        assert profile is not None
        return profile

    async def devices(self, username: str) -> DeviceList:
        devices = await self._call("GET", f"/v1/users/{username}/devices", DeviceList)
        assert devices is not None
        return devices

    async def claim_keys(self, username: str, devices: list[int] | None = None) -> KeyBundles:
        """Key bundles of the user's devices (only ``devices`` when given), one-time prekeys included."""
        body = None if devices is None else KeyClaim(devices=devices)
        bundles = await self._call("POST", f"/v1/users/{username}/keys/claim", KeyBundles, body)
        assert bundles is not None
        return bundles

    async def upload_prekeys(self, prekeys: list[OneTimePrekey]) -> PrekeyStatus:
        status = await self._call(
            "POST", "/v1/devices/self/prekeys", PrekeyStatus, PrekeyUpload(prekeys=prekeys)
        )
        assert status is not None
        return status

    async def prekey_status(self) -> PrekeyStatus:
        status = await self._call("GET", "/v1/devices/self/prekeys", PrekeyStatus)
        assert status is not None
        return status

    async def create_group(self, request: GroupCreate) -> GroupInfo:
        return await self._required("POST", "/v1/groups", GroupInfo, request)

    async def groups(self) -> GroupList:
        return await self._required("GET", "/v1/groups", GroupList)

    async def group(self, group_id: str) -> GroupInfo:
        return await self._required("GET", f"/v1/groups/{group_id}", GroupInfo)

    async def add_member(self, group_id: str, request: MemberAdd) -> GroupInfo:
        return await self._required("POST", f"/v1/groups/{group_id}/members", GroupInfo, request)

    async def remove_member(self, group_id: str, username: str) -> GroupInfo:
        return await self._required("DELETE", f"/v1/groups/{group_id}/members/{username}", GroupInfo)

    async def change_role(self, group_id: str, username: str, request: RoleChange) -> GroupInfo:
        return await self._required("PUT", f"/v1/groups/{group_id}/members/{username}", GroupInfo, request)

    async def rename_group(self, group_id: str, request: GroupRename) -> GroupInfo:
        return await self._required("PATCH", f"/v1/groups/{group_id}", GroupInfo, request)

    async def leave_group(self, group_id: str) -> None:
        await self._call("POST", f"/v1/groups/{group_id}/leave", None)

    async def proof(self, message_id: str) -> Proof:
        return await self._required("GET", f"/v1/messages/{message_id}/proof", Proof)

    async def my_devices(self) -> MyDevices:
        return await self._required("GET", "/v1/devices", MyDevices)

    async def remove_device(self, device_id: int, password: str) -> None:
        """Sign a device of this account out for good; the account's password is asked again."""
        await self._call("DELETE", f"/v1/devices/{device_id}", None, DeviceRemoval(password=password))

    async def directory(self, **query: str | int) -> DirectoryPage:
        params = "&".join(f"{name}={quote(str(value))}" for name, value in query.items() if value != "")
        return await self._required("GET", f"/v1/directory?{params}", DirectoryPage)

    async def _required(self, method: str, path: str, response_type: type[T], body: Any = None) -> T:
        answer = await self._call(method, path, response_type, body)
        assert answer is not None
        return answer

    async def receipts(self, message_id: str) -> MessageReceipts:
        receipts = await self._call("GET", f"/v1/messages/{message_id}/receipts", MessageReceipts)
        assert receipts is not None
        return receipts


def _error_from(response: httpx.Response) -> errors.LienError:
    try:
        body = msgspec.json.decode(response.content, type=ErrorResponse).error
    except msgspec.MsgspecError:
        return errors.LienError(f"HTTP {response.status_code} from the server.")
    return errors.error_from_wire(body.code, body.message, details=body.details, retry_after=body.retry_after)


__all__ = ["ApiClient", "DeviceRegistration", "Profile"]

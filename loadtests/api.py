"""The few HTTP calls the load tests make (docs/protocol.md §4.3), for a sync or an asyncio client.

Each call is a :class:`Call` (method, path, body, token, answer type), built
by the functions below and run by :func:`run_sync` (Locust's gevent users,
over ``httpx.Client``) or :func:`run_async` (the driver, over
``httpx.AsyncClient``). Bodies are the protocol core's structs, encoded and
decoded by msgspec exactly as the SDK does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
import msgspec

from lien.protocol import api

T = TypeVar("T")


class ApiError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status = status


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    answer: type[T] | None
    body: Any = None
    token: str | None = None

    def request(self) -> dict[str, Any]:
        headers = {"content-type": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        content = None if self.body is None else msgspec.json.encode(self.body)
        return {"method": self.method, "url": self.path, "headers": headers, "content": content}

    def parse(self, response: httpx.Response) -> T:
        if response.status_code >= 300:
            raise ApiError(response.status_code, response.content)
        if self.answer is None:
            return None  # type: ignore[return-value]
        return msgspec.json.decode(response.content, type=self.answer)


def register(request: api.RegisterRequest) -> Call[api.SessionGrant]:
    return Call("POST", "/v1/register", api.SessionGrant, body=request)


def claim_bundles(token: str, user: str) -> Call[api.KeyBundles]:
    return Call("POST", f"/v1/users/{user}/keys/claim", api.KeyBundles, token=token)


def device_list(token: str, user: str) -> Call[api.DeviceList]:
    return Call("GET", f"/v1/users/{user}/devices", api.DeviceList, token=token)


def create_group(token: str, name: str, members: list[str]) -> Call[api.GroupInfo]:
    return Call(
        "POST", "/v1/groups", api.GroupInfo, body=api.GroupCreate(name=name, members=members), token=token
    )


def run_sync(client: httpx.Client, call: Call[T]) -> T:
    return call.parse(client.request(**call.request()))


async def run_async(client: httpx.AsyncClient, call: Call[T]) -> T:
    return call.parse(await client.request(**call.request()))

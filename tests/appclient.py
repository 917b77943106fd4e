"""Helpers for in-process app tests (Starlette's TestClient, level 2)."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.testclient import TestClient

from lien.protocol import codec, frames
from lien.protocol.api import Profile, RegisterRequest, SessionGrant
from server.app import create_app
from server.settings import Settings
from tests.keys import TestDevice, new_device

PASSWORD = "correct horse battery"


def app_client(database_url: str, **settings: Any) -> TestClient:
    return TestClient(create_app(Settings(database_url=database_url, **settings)))


def register(
    client: TestClient,
    username: str,
    *,
    device: TestDevice | None = None,
    invite: str | None = None,
    **profile: Any,
) -> tuple[SessionGrant, TestDevice]:
    device = device or new_device()
    request = RegisterRequest(
        username=username,
        password=PASSWORD,
        profile=Profile(display_name=profile.pop("display_name", username.title()), **profile),
        device=device.registration,
        invite=invite,
    )
    response = client.post("/v1/register", content=msgspec.json.encode(request))
    assert response.status_code == 201, response.text
    return msgspec.json.decode(response.content, type=SessionGrant), device


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def send_frame(ws: Any, frame: frames.Frame) -> None:
    ws.send_text(codec.encode_text(frame))


def receive_frame(ws: Any) -> frames.ServerFrame:
    return codec.decode_server_frame(ws.receive_text())


def authenticate(ws: Any, token: str) -> frames.Ready:
    send_frame(ws, frames.Auth(v=1, token=token))
    ready = receive_frame(ws)
    assert isinstance(ready, frames.Ready), ready
    return ready


def receive_until(ws: Any, kind: type[Any], *, limit: int = 50) -> Any:
    """The next frame of this type, skipping unrelated ones (presence and the like)."""
    for _ in range(limit):
        frame = receive_frame(ws)
        if isinstance(frame, kind):
            return frame
    raise AssertionError(f"no {kind.__name__} within {limit} frames")

"""Care-team groups on the server: who may do what, events in order, one stored ciphertext, fan-out."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from lien.protocol import frames
from lien.protocol.api import GroupInfo, MessageReceipts, SessionGrant
from server.settings import Settings
from tests.inprocess import PASSWORD, FrameSocket, bearer, frame_socket, register, serving
from tests.keys import TestDevice, new_device, signed_receipt


class Node:
    def __init__(self, url: str, http: httpx.AsyncClient, database: Path) -> None:
        self.url = url
        self.http = http
        self.database = database
        self.tokens: dict[str, SessionGrant] = {}
        self.devices: dict[str, TestDevice] = {}

    async def user(self, username: str) -> SessionGrant:
        grant, device = await register(self.http, username)
        self.tokens[username] = grant
        self.devices[username] = device
        return grant

    async def call(self, username: str, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.http.request(
            method, path, headers=bearer(self.tokens[username].token), json=None if body is None else body
        )

    def socket(self, username: str):  # type: ignore[no-untyped-def]
        return frame_socket(self.url, self.tokens[username].token)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    database = tmp_path / "lien.db"
    settings = Settings(database_url=f"sqlite+aiosqlite:///{database}", max_group_members=6)
    async with serving(settings) as url, httpx.AsyncClient(base_url=url) as http:
        yield Node(url, http, database)


def code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


async def new_group(node: Node, owner: str, *members: str, name: str = "Équipe Mme Lefèvre") -> GroupInfo:
    response = await node.call(owner, "POST", "/v1/groups", {"name": name, "members": list(members)})
    assert response.status_code == 201, response.text
    return msgspec.json.decode(response.content, type=GroupInfo)


async def test_roles_decide_who_changes_what(node: Node) -> None:
    for name in ("owner", "admin", "member", "other", "outsider", "newcomer"):
        await node.user(name)
    group = await new_group(node, "owner", "admin", "member", "other")
    assert {m.user: m.role for m in group.members} == {
        "owner": "owner",
        "admin": "member",
        "member": "member",
        "other": "member",
    }
    gid = group.id
    assert (
        await node.call("owner", "PUT", f"/v1/groups/{gid}/members/admin", {"role": "admin"})
    ).status_code == 200

    # Someone outside the group can do nothing, and learns nothing of it.
    for method, path, body in [
        ("GET", f"/v1/groups/{gid}", None),
        ("PATCH", f"/v1/groups/{gid}", {"name": "x"}),
        ("POST", f"/v1/groups/{gid}/members", {"user": "newcomer"}),
        ("DELETE", f"/v1/groups/{gid}/members/member", None),
        ("PUT", f"/v1/groups/{gid}/members/member", {"role": "admin"}),
        ("POST", f"/v1/groups/{gid}/leave", None),
    ]:
        refused = await node.call("outsider", method, path, body)
        assert (refused.status_code, code(refused)) == (403, "not-a-member"), (method, path)
    missing = await node.call("outsider", "GET", "/v1/groups/GAAAAAAAAAAAAAAAAAAAAAAAA")
    assert (missing.status_code, code(missing)) == (404, "unknown-group")

    # A plain member reads and leaves, but changes nothing else.
    assert (await node.call("member", "GET", f"/v1/groups/{gid}")).status_code == 200
    for method, path, body in [
        ("PATCH", f"/v1/groups/{gid}", {"name": "x"}),
        ("POST", f"/v1/groups/{gid}/members", {"user": "newcomer"}),
        ("DELETE", f"/v1/groups/{gid}/members/other", None),
        ("PUT", f"/v1/groups/{gid}/members/other", {"role": "admin"}),
    ]:
        refused = await node.call("member", method, path, body)
        assert (refused.status_code, code(refused)) == (403, "role-required"), (method, path)

    # An admin manages plain members, not admins, owners or roles.
    renamed = await node.call("admin", "PATCH", f"/v1/groups/{gid}", {"name": "Équipe soins à domicile"})
    assert renamed.json()["name"] == "Équipe soins à domicile"
    assert (
        await node.call("admin", "POST", f"/v1/groups/{gid}/members", {"user": "newcomer"})
    ).status_code == 200
    again = await node.call("admin", "POST", f"/v1/groups/{gid}/members", {"user": "newcomer"})
    assert (again.status_code, code(again)) == (409, "already-member")
    assert (await node.call("admin", "DELETE", f"/v1/groups/{gid}/members/newcomer")).status_code == 200
    for method, path, body in [
        ("DELETE", f"/v1/groups/{gid}/members/owner", None),
        ("PUT", f"/v1/groups/{gid}/members/member", {"role": "admin"}),
        ("POST", f"/v1/groups/{gid}/members", {"user": "newcomer", "role": "admin"}),
    ]:
        refused = await node.call("admin", method, path, body)
        assert (refused.status_code, code(refused)) == (403, "role-required"), (method, path)
    gone = await node.call("admin", "DELETE", f"/v1/groups/{gid}/members/newcomer")
    assert (gone.status_code, code(gone)) == (404, "unknown-member")

    # The owner hands over the ownership; leaving members go; the group stays with someone in charge.
    handed = await node.call("owner", "PUT", f"/v1/groups/{gid}/members/admin", {"role": "owner"})
    assert {m.user: m.role for m in msgspec.json.decode(handed.content, type=GroupInfo).members}[
        "owner"
    ] == "admin"
    assert (await node.call("member", "POST", f"/v1/groups/{gid}/leave")).status_code == 204
    assert code(await node.call("member", "GET", f"/v1/groups/{gid}")) == "not-a-member"
    assert (await node.call("admin", "POST", f"/v1/groups/{gid}/leave")).status_code == 204
    info = msgspec.json.decode((await node.call("owner", "GET", f"/v1/groups/{gid}")).content, type=GroupInfo)
    assert {m.user: m.role for m in info.members} == {"owner": "owner", "other": "member"}


async def test_limits_and_bad_requests(node: Node) -> None:
    for name in ("a", "b", "c", "d", "e", "f", "g"):
        await node.user(f"user{name}")
    too_many = await node.call(
        "usera", "POST", "/v1/groups", {"name": "x", "members": [f"user{n}" for n in "bcdefg"]}
    )
    assert (too_many.status_code, code(too_many)) == (409, "group-full")
    unknown = await node.call("usera", "POST", "/v1/groups", {"name": "x", "members": ["ghost"]})
    assert (unknown.status_code, code(unknown), unknown.json()["error"]["details"]) == (
        404,
        "unknown-user",
        {"users": ["ghost"]},
    )
    group = await new_group(node, "usera", "userb", "userc", "userd", "usere", "userf")
    full = await node.call("usera", "POST", f"/v1/groups/{group.id}/members", {"user": "userg"})
    assert (full.status_code, code(full)) == (409, "group-full")
    for body in (
        {"name": ""},
        {"name": "x" * 129},
        {"name": "x", "members": "userb"},
        {"name": "x", "extra": 1},
    ):
        bad = await node.call("usera", "POST", "/v1/groups", body)
        assert (bad.status_code, code(bad)) == (400, "invalid-request"), body


async def events_until(socket: FrameSocket, epoch: int) -> list[frames.GroupEvent]:
    seen = []
    while not seen or seen[-1].epoch < epoch:
        seen.append(await socket.receive_until(frames.GroupEvent))
    return seen


async def test_events_reach_members_in_order_and_the_removed_member_last(node: Node) -> None:
    for name in ("owner", "nurse", "pharmacist"):
        await node.user(name)
    async with node.socket("nurse") as nurse:
        group = await new_group(node, "owner", "nurse")
        await node.call("owner", "POST", f"/v1/groups/{group.id}/members", {"user": "pharmacist"})
        await node.call("owner", "PATCH", f"/v1/groups/{group.id}", {"name": "Tournée du mardi"})
        await node.call("owner", "DELETE", f"/v1/groups/{group.id}/members/nurse")
        seen = await events_until(nurse, 4)
        assert [(e.epoch, e.event, e.subject) for e in seen] == [
            (1, "created", None),
            (2, "member-added", "pharmacist"),
            (3, "renamed", None),
            (4, "member-removed", "nurse"),
        ]
        assert seen[0].name == "Équipe Mme Lefèvre" and seen[2].name == "Tournée du mardi"
        await node.call("owner", "PATCH", f"/v1/groups/{group.id}", {"name": "after"})
        await nurse.send(frames.Ping(id=1))
        assert isinstance(await nurse.receive_until(frames.Pong), frames.Pong)  # nothing about epoch 5 came
    log = (
        sqlite3.connect(node.database)
        .execute("SELECT epoch, kind FROM group_events ORDER BY epoch")
        .fetchall()
    )
    assert [kind for _, kind in log] == ["created", "member-added", "renamed", "member-removed", "renamed"]


async def test_a_group_message_is_stored_once_and_reaches_every_member_device(node: Node) -> None:
    sender = await node.user("generalist")
    for name in ("nurse", "pharmacist", "physio"):
        await node.user(name)
    tablet = new_device()
    second = await node.http.post(
        "/v1/login",
        json=msgspec.to_builtins({"username": "nurse", "password": PASSWORD, "device": tablet.registration}),
    )
    nurse_tablet = msgspec.json.decode(second.content, type=SessionGrant)
    signers = {
        name: (node.devices[name], (name, node.tokens[name].device))
        for name in ("nurse", "pharmacist", "physio")
    }
    signers["nurse-tablet"] = (tablet, ("nurse", nurse_tablet.device))
    group = await new_group(node, "generalist", "nurse", "pharmacist", "physio")
    sockets = {name: node.socket(name) for name in ("nurse", "pharmacist", "physio")}
    opened = {name: await context.__aenter__() for name, context in sockets.items()}
    tablet_context = frame_socket(node.url, nurse_tablet.token)
    opened["nurse-tablet"] = await tablet_context.__aenter__()
    try:
        info = msgspec.json.decode(
            (await node.call("generalist", "GET", f"/v1/groups/{group.id}")).content, type=GroupInfo
        )
        body = b"\x03" + b"one ciphertext for every member device" * 3
        keys = [frames.Copy(device=nurse_tablet.device, body=b"\x02key distribution for the new tablet")]
        async with node.socket("generalist") as gp:
            await gp.send(frames.GroupSend(id="g1", group=group.id, epoch=info.epoch, body=body, keys=keys))
            accepted = await gp.receive_until(frames.Accepted)
            for name, socket in opened.items():
                delivered = await socket.receive_until(frames.Deliver)
                assert (delivered.message, delivered.group, delivered.body, delivered.sender) == (
                    accepted.message,
                    group.id,
                    body,
                    "generalist",
                )
                assert delivered.to is None
                assert delivered.key == (keys[0].body if name == "nurse-tablet" else None)
                signer, (username, device_id) = signers[name]
                await socket.send(
                    signed_receipt(signer, username, device_id, delivered.message, "read", body)
                )
            readers = set()
            while len(readers) < 4:
                status = await gp.receive_until(frames.Status)
                readers.add((status.by, status.by_device))
            listing = await node.call("generalist", "GET", f"/v1/messages/{accepted.message}/receipts")
            assert len(msgspec.json.decode(listing.content, type=MessageReceipts).receipts) == 4
            assert sender.device not in {device for _, device in readers}
    finally:
        for context in [*sockets.values(), tablet_context]:
            await context.__aexit__(None, None, None)
    with sqlite3.connect(node.database) as database:
        stored = database.execute("SELECT count(*) FROM messages WHERE body = ?", (body,)).fetchone()[0]
        per_device = database.execute("SELECT count(*), count(frame) FROM inbox WHERE kind = 3").fetchone()
    assert stored == 1
    assert per_device[1] == 0  # entries point at the one body (they are purged once acked, if acked)


async def test_group_send_errors(node: Node) -> None:
    for name in ("generalist", "nurse", "outsider"):
        await node.user(name)
    group = await new_group(node, "generalist", "nurse")
    async with node.socket("generalist") as gp, node.socket("outsider") as outsider:
        body = b"\x03ciphertext"
        await outsider.send(frames.GroupSend(id="x1", group=group.id, epoch=group.epoch, body=body))
        error = await outsider.receive_until(frames.Error)
        assert (error.code, error.ref) == ("not-a-member", "x1")
        await gp.send(frames.GroupSend(id="x2", group="GAAAAAAAAAAAAAAAAAAAAAAAAA", epoch=1, body=body))
        assert (await gp.receive_until(frames.Error)).code == "unknown-group"
        await node.call("generalist", "PATCH", f"/v1/groups/{group.id}", {"name": "renamed"})
        await gp.send(frames.GroupSend(id="x3", group=group.id, epoch=group.epoch, body=body))
        stale = await gp.receive_until(frames.Error)
        assert (stale.code, stale.details) == ("stale-membership", {"epoch": group.epoch + 1})
        outsider_device = node.tokens["outsider"].device
        strays = [frames.Copy(device=outsider_device, body=b"\x02for someone outside")]
        await gp.send(
            frames.GroupSend(id="x4", group=group.id, epoch=group.epoch + 1, body=body, keys=strays)
        )
        mismatch = await gp.receive_until(frames.Error)
        assert (mismatch.code, mismatch.details) == (
            "devices-mismatch",
            {"missing": [], "extra": [outsider_device]},
        )
        await gp.send(frames.GroupSend(id="x5", group=group.id, epoch=group.epoch + 1, body=body))
        accepted = await gp.receive_until(frames.Accepted)
        await gp.send(frames.GroupSend(id="x5", group=group.id, epoch=group.epoch + 1, body=body))
        assert (await gp.receive_until(frames.Accepted)).duplicate
        outsider_keys, outsider_grant = node.devices["outsider"], node.tokens["outsider"]
        await outsider.send(
            signed_receipt(outsider_keys, "outsider", outsider_grant.device, accepted.message, "read", body)
        )
        assert (await outsider.receive_until(frames.Error)).code == "not-a-recipient"
        await gp.send(
            frames.Resend(
                id="r1", message=accepted.message, copies=[frames.Copy(device=outsider_device, body=b"\x02")]
            )
        )
        assert (await gp.receive_until(frames.Error)).code == "devices-mismatch"


async def test_a_member_who_joined_later_cannot_receipt_an_earlier_message(node: Node) -> None:
    for name in ("generalist", "nurse", "latecomer"):
        await node.user(name)
    group = await new_group(node, "generalist", "nurse")
    body = b"\x03before the latecomer joined"
    async with node.socket("generalist") as gp:
        await gp.send(frames.GroupSend(id="early", group=group.id, epoch=group.epoch, body=body))
        early = await gp.receive_until(frames.Accepted)
    await node.call("generalist", "POST", f"/v1/groups/{group.id}/members", {"user": "latecomer"})
    late = node.tokens["latecomer"]
    async with node.socket("latecomer") as latecomer:
        receipt = signed_receipt(
            node.devices["latecomer"], "latecomer", late.device, early.message, "read", body
        )
        await latecomer.send(receipt)
        refused = await latecomer.receive_until(frames.Error)
        assert (refused.code, refused.ref) == ("not-a-recipient", early.message)

"""The /v1 HTTP API (docs/protocol.md §4)."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lien.protocol import errors
from lien.protocol.api import (
    DeviceRemoval,
    GroupCreate,
    GroupRename,
    KeyClaim,
    LoginRequest,
    MemberAdd,
    MessageReceipts,
    PrekeyUpload,
    ProfileUpdate,
    ReceiptRecord,
    RegisterRequest,
    RoleChange,
    SignedPrekey,
)
from server.handlers import accounts, directory, exports, groups, keys, proofs
from server.handlers import receipts as receipt_rules
from server.http.common import authenticated, json_response, parse_body, parse_optional_body, services_of
from server.storage import accounts as account_store


async def register(request: Request) -> Response:
    body = await parse_body(request, RegisterRequest)
    return json_response(await accounts.register(services_of(request), body), status_code=201)


async def login(request: Request) -> Response:
    body = await parse_body(request, LoginRequest)
    return json_response(await accounts.login(services_of(request), body))


async def logout(request: Request) -> Response:
    caller = await authenticated(request)
    await accounts.logout(services_of(request), caller)
    return Response(status_code=204)


async def me(request: Request) -> Response:
    caller = await authenticated(request)
    services = services_of(request)
    if request.method == "PATCH":
        update = await parse_body(request, ProfileUpdate)
        return json_response(await accounts.update_profile(services, caller, update))
    return json_response(await accounts.my_account(services, caller))


async def user_profile(request: Request) -> Response:
    await authenticated(request)
    return json_response(await accounts.public_profile(services_of(request), request.path_params["username"]))


async def directory_search(request: Request) -> Response:
    await authenticated(request)
    params = request.query_params
    try:
        limit = int(params.get("limit", directory.DEFAULT_PAGE))
    except ValueError:
        raise errors.InvalidRequest("limit is a number.") from None
    page = await directory.search(
        services_of(request),
        q=params.get("q", ""),
        profession=params.get("profession", ""),
        organisation=params.get("organisation", ""),
        city=params.get("city", ""),
        limit=limit,
        cursor=params.get("cursor"),
    )
    return json_response(page)


async def user_devices(request: Request) -> Response:
    await authenticated(request)
    return json_response(await keys.device_list(services_of(request), request.path_params["username"]))


async def claim_keys(request: Request) -> Response:
    caller = await authenticated(request)
    claim = await parse_optional_body(request, KeyClaim)
    only = None if claim is None else claim.devices
    username = request.path_params["username"]
    return json_response(await keys.claim_bundles(services_of(request), caller, username, only))


async def prekeys(request: Request) -> Response:
    caller = await authenticated(request)
    services = services_of(request)
    if request.method == "POST":
        upload = await parse_body(request, PrekeyUpload)
        return json_response(await keys.upload_prekeys(services, caller, upload))
    return json_response(await keys.prekey_status(services, caller))


async def message_proof(request: Request) -> Response:
    caller = await authenticated(request)
    return json_response(
        await proofs.proof_for(services_of(request), caller, request.path_params["message_id"])
    )


async def ledger_keys(request: Request) -> Response:
    return json_response(await proofs.ledger_keys(services_of(request)))


async def my_export(request: Request) -> Response:
    """The account's own audit export (GET /v1/me/export?from=YYYY-MM-DD&to=...&format=csv|html)."""
    caller = await authenticated(request)
    services = services_of(request)
    params = request.query_params
    try:
        start = _day(params.get("from"))
        end = _day(params.get("to"))
    except ValueError:
        raise errors.InvalidRequest("Dates are YYYY-MM-DD.") from None
    export = await exports.build(
        services.database, services.clock(), username=caller.username, start=start, end=end
    )
    if params.get("format", "csv") == "html":
        return Response(exports.to_html(export, services.clock()), media_type="text/html; charset=utf-8")
    return Response(
        exports.to_csv(export),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="lien-export.csv"'},
    )


def _day(value: str | None) -> int | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


async def my_devices(request: Request) -> Response:
    caller = await authenticated(request)
    return json_response(await accounts.my_devices(services_of(request), caller))


async def remove_device(request: Request) -> Response:
    caller = await authenticated(request)
    try:
        device_id = int(request.path_params["device_id"])
    except ValueError:
        raise errors.UnknownDevice() from None
    removal = await parse_optional_body(request, DeviceRemoval)
    if removal is None:
        raise errors.InvalidRequest('Removing a device needs the account\'s password: {"password": "..."}.')
    await accounts.remove_device(services_of(request), caller, device_id, removal.password)
    return Response(status_code=204)


async def signed_prekey(request: Request) -> Response:
    caller = await authenticated(request)
    prekey = await parse_body(request, SignedPrekey)
    await keys.rotate_signed_prekey(services_of(request), caller, prekey)
    return Response(status_code=204)


async def receipts(request: Request) -> Response:
    caller = await authenticated(request)
    services = services_of(request)
    message_id = request.path_params["message_id"]
    rows = await receipt_rules.message_receipts(services, caller, message_id)
    async with services.database.read() as connection:
        names = await account_store.usernames_by_id(connection, list({row.user_id for row in rows}))
    return json_response(
        MessageReceipts(
            message=message_id,
            receipts=[
                ReceiptRecord(device=r.device_id, user=names[r.user_id], kind=r.kind, at=r.at) for r in rows
            ],
        )
    )


async def groups_collection(request: Request) -> Response:
    caller = await authenticated(request)
    services = services_of(request)
    if request.method == "POST":
        body = await parse_body(request, GroupCreate)
        return json_response(await groups.create(services, caller, body), status_code=201)
    return json_response(await groups.my_groups(services, caller))


async def group(request: Request) -> Response:
    caller = await authenticated(request)
    services = services_of(request)
    group_id = request.path_params["group"]
    if request.method == "PATCH":
        body = await parse_body(request, GroupRename)
        return json_response(await groups.rename(services, caller, group_id, body.name))
    return json_response(await groups.info(services, caller, group_id))


async def group_members(request: Request) -> Response:
    caller = await authenticated(request)
    body = await parse_body(request, MemberAdd)
    return json_response(
        await groups.add_member(services_of(request), caller, request.path_params["group"], body)
    )


async def group_member(request: Request) -> Response:
    caller = await authenticated(request)
    services = services_of(request)
    group_id, username = request.path_params["group"], request.path_params["username"]
    if request.method == "PUT":
        body = await parse_body(request, RoleChange)
        return json_response(await groups.change_role(services, caller, group_id, username, body))
    return json_response(await groups.remove_member(services, caller, group_id, username))


async def group_leave(request: Request) -> Response:
    caller = await authenticated(request)
    await groups.leave(services_of(request), caller, request.path_params["group"])
    return Response(status_code=204)


routes = [
    Route("/v1/register", register, methods=["POST"]),
    Route("/v1/login", login, methods=["POST"]),
    Route("/v1/logout", logout, methods=["POST"]),
    Route("/v1/me", me, methods=["GET", "PATCH"]),
    Route("/v1/me/export", my_export, methods=["GET"]),
    Route("/v1/directory", directory_search, methods=["GET"]),
    Route("/v1/users/{username}", user_profile, methods=["GET"]),
    Route("/v1/users/{username}/devices", user_devices, methods=["GET"]),
    Route("/v1/users/{username}/keys/claim", claim_keys, methods=["POST"]),
    Route("/v1/devices", my_devices, methods=["GET"]),
    Route("/v1/devices/self/prekeys", prekeys, methods=["GET", "POST"]),
    Route("/v1/devices/self/signed-prekey", signed_prekey, methods=["PUT"]),
    Route("/v1/devices/{device_id}", remove_device, methods=["DELETE"]),
    Route("/v1/messages/{message_id}/receipts", receipts, methods=["GET"]),
    Route("/v1/messages/{message_id}/proof", message_proof, methods=["GET"]),
    Route("/v1/ledger/keys", ledger_keys, methods=["GET"]),
    Route("/v1/groups", groups_collection, methods=["GET", "POST"]),
    Route("/v1/groups/{group}", group, methods=["GET", "PATCH"]),
    Route("/v1/groups/{group}/members", group_members, methods=["POST"]),
    Route("/v1/groups/{group}/members/{username}", group_member, methods=["PUT", "DELETE"]),
    Route("/v1/groups/{group}/leave", group_leave, methods=["POST"]),
]

"""Accounts over HTTP, in process, on SQLite and PostgreSQL."""

from __future__ import annotations

import msgspec

from lien.protocol.api import Account, LoginRequest, Profile, RegisterRequest, SessionGrant
from server.handlers.tokens import invite_hash
from tests.appclient import PASSWORD, app_client, bearer, register
from tests.keys import new_device


def error_code(response) -> str:  # type: ignore[no-untyped-def]
    return response.json()["error"]["code"]


def test_register_login_profile_logout(database_url: str) -> None:
    with app_client(database_url) as client:
        grant, _ = register(
            client, "dr.martin", profession="Médecin généraliste", city="Lyon", rpps="10101010101"
        )
        assert grant.user == "dr.martin" and grant.device > 0 and len(grant.token) >= 40

        account = msgspec.json.decode(client.get("/v1/me", headers=bearer(grant.token)).content, type=Account)
        assert account.profile.profession == "Médecin généraliste"
        assert account.profile.rpps == "10101010101"

        updated = client.patch("/v1/me", headers=bearer(grant.token), json={"city": "Villeurbanne"})
        assert updated.status_code == 200 and updated.json()["profile"]["city"] == "Villeurbanne"

        login = client.post(
            "/v1/login", json={"username": "dr.martin", "password": PASSWORD, "device_id": grant.device}
        )
        assert login.status_code == 200
        second = msgspec.json.decode(login.content, type=SessionGrant)
        assert second.device == grant.device and second.token != grant.token

        assert client.post("/v1/logout", headers=bearer(grant.token)).status_code == 204
        refused = client.get("/v1/me", headers=bearer(grant.token))
        assert refused.status_code == 401 and error_code(refused) == "auth-failed"
        assert client.get("/v1/me", headers=bearer(second.token)).status_code == 200


def test_username_taken_and_invalid_inputs(database_url: str) -> None:
    with app_client(database_url) as client:
        register(client, "alice")
        again = client.post(
            "/v1/register",
            content=msgspec.json.encode(
                RegisterRequest(
                    username="alice",
                    password=PASSWORD,
                    profile=Profile(display_name="A"),
                    device=new_device().registration,
                )
            ),
        )
        assert again.status_code == 409 and error_code(again) == "username-taken"

        body = msgspec.to_builtins(
            RegisterRequest(
                username="bob",
                password=PASSWORD,
                profile=Profile(display_name="B"),
                device=new_device().registration,
            )
        )
        for field, value in [("username", "Bob Smith"), ("username", "x"), ("password", "short")]:
            bad = client.post("/v1/register", json={**body, field: value})
            assert bad.status_code == 400 and error_code(bad) == "invalid-request", (field, value)
        bad_rpps = client.post(
            "/v1/register", json={**body, "profile": {"display_name": "B", "rpps": "12ab"}}
        )
        assert error_code(bad_rpps) == "invalid-request"
        not_json = client.post("/v1/register", content=b"{nope")
        assert not_json.status_code == 400 and error_code(not_json) == "invalid-request"
        huge = client.post("/v1/register", content=b"x" * 300_000)
        assert huge.status_code == 413 and error_code(huge) == "body-too-large"


def test_signed_prekey_signature_is_checked(database_url: str) -> None:
    with app_client(database_url) as client:
        device = new_device()
        registration = msgspec.to_builtins(device.registration)
        signature = bytearray(device.registration.signed_prekey.signature)
        signature[0] ^= 1
        import base64

        registration["signed_prekey"]["signature"] = base64.b64encode(bytes(signature)).decode()
        response = client.post(
            "/v1/register",
            json={
                "username": "carol",
                "password": PASSWORD,
                "profile": {"display_name": "C"},
                "device": registration,
            },
        )
        assert response.status_code == 400 and error_code(response) == "invalid-prekey-signature"
        # Nothing was created: the name is still free.
        register(client, "carol")


def test_wrong_password_and_unknown_user_look_the_same(database_url: str) -> None:
    with app_client(database_url) as client:
        register(client, "dave")
        wrong = client.post(
            "/v1/login", json={"username": "dave", "password": "not the password", "device_id": 1}
        )
        unknown = client.post(
            "/v1/login", json={"username": "nobody", "password": "not the password", "device_id": 1}
        )
        assert wrong.status_code == unknown.status_code == 401
        assert error_code(wrong) == error_code(unknown) == "invalid-credentials"
        assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]


def test_login_new_device_limits_and_foreign_device(database_url: str) -> None:
    with app_client(database_url) as client:
        alice, _ = register(client, "alice")
        bob, _ = register(client, "bob")
        foreign = client.post(
            "/v1/login", json={"username": "alice", "password": PASSWORD, "device_id": bob.device}
        )
        assert foreign.status_code == 404 and error_code(foreign) == "unknown-device"
        both = client.post(
            "/v1/login",
            json={
                "username": "alice",
                "password": PASSWORD,
                "device_id": alice.device,
                "device": msgspec.to_builtins(new_device().registration),
            },
        )
        assert error_code(both) == "invalid-request"
        devices = {alice.device}
        from lien.protocol import limits

        for _ in range(limits.MAX_DEVICES_PER_USER - 1):
            response = client.post(
                "/v1/login",
                content=msgspec.json.encode(
                    LoginRequest(username="alice", password=PASSWORD, device=new_device().registration)
                ),
            )
            assert response.status_code == 200, response.text
            devices.add(response.json()["device"])
        assert len(devices) == limits.MAX_DEVICES_PER_USER
        over = client.post(
            "/v1/login",
            content=msgspec.json.encode(
                LoginRequest(username="alice", password=PASSWORD, device=new_device().registration)
            ),
        )
        assert over.status_code == 409 and error_code(over) == "too-many-devices"
        listing = client.get("/v1/users/alice/devices", headers=bearer(bob.token)).json()
        assert {d["device"] for d in listing["devices"]} == devices


def test_removing_a_device_asks_for_the_password_again(database_url: str) -> None:
    """A stolen session token alone cannot sign the owner's devices out; a refusal changes nothing."""
    with app_client(database_url) as client:
        laptop, _ = register(client, "dr.blanc")
        bob, _ = register(client, "bob")
        phone = msgspec.json.decode(
            client.post(
                "/v1/login",
                content=msgspec.json.encode(
                    LoginRequest(username="dr.blanc", password=PASSWORD, device=new_device().registration)
                ),
            ).content,
            type=SessionGrant,
        )
        path = f"/v1/devices/{laptop.device}"

        def still_both_there() -> None:
            assert client.get("/v1/me", headers=bearer(laptop.token)).status_code == 200
            listed = client.get("/v1/devices", headers=bearer(phone.token)).json()["devices"]
            assert {device["device"] for device in listed} == {laptop.device, phone.device}

        no_body = client.request("DELETE", path, headers=bearer(phone.token))
        assert no_body.status_code == 400 and error_code(no_body) == "invalid-request"
        assert "password" in no_body.json()["error"]["message"]
        still_both_there()

        wrong = client.request(
            "DELETE", path, headers=bearer(phone.token), json={"password": "not-it-at-all"}
        )
        assert wrong.status_code == 403 and error_code(wrong) == "invalid-password"
        still_both_there()

        # Bob's own password does not open dr.blanc's devices, nor his token hers.
        foreign = client.request("DELETE", path, headers=bearer(bob.token), json={"password": PASSWORD})
        assert foreign.status_code == 404 and error_code(foreign) == "unknown-device"
        still_both_there()

        removed = client.request("DELETE", path, headers=bearer(phone.token), json={"password": PASSWORD})
        assert removed.status_code == 204
        refused = client.get("/v1/me", headers=bearer(laptop.token))
        assert refused.status_code == 401 and error_code(refused) == "auth-failed"
        listed = client.get("/v1/devices", headers=bearer(phone.token)).json()["devices"]
        assert [device["device"] for device in listed] == [phone.device]
        again = client.request("DELETE", path, headers=bearer(phone.token), json={"password": PASSWORD})
        assert again.status_code == 404 and error_code(again) == "unknown-device"
        back = client.post(
            "/v1/login", json={"username": "dr.blanc", "password": PASSWORD, "device_id": laptop.device}
        )
        assert back.status_code == 404 and error_code(back) == "unknown-device"


def test_password_guesses_are_limited_per_account(database_url: str) -> None:
    """PASSWORD_ATTEMPTS_BURST wrong passwords, then rate-limited before any hashing (protocol §4.4)."""
    from lien.protocol import limits

    with app_client(database_url) as client:
        alice, _ = register(client, "alice")
        register(client, "bob")

        def login(username: str, password: str):  # type: ignore[no-untyped-def]
            return client.post(
                "/v1/login", json={"username": username, "password": password, "device_id": alice.device}
            )

        # Right passwords are given back: they never use the account's attempts up.
        for _ in range(limits.PASSWORD_ATTEMPTS_BURST + 2):
            assert login("alice", PASSWORD).status_code == 200
        for _ in range(limits.PASSWORD_ATTEMPTS_BURST):
            wrong = login("alice", "a wrong guess")
            assert wrong.status_code == 401 and error_code(wrong) == "invalid-credentials"
        for password in ("another guess", PASSWORD):  # now even the right one waits
            limited = login("alice", password)
            assert limited.status_code == 429 and error_code(limited) == "rate-limited"
            retry_after = limited.json()["error"]["retry_after"]
            assert 0 < retry_after <= limits.PASSWORD_ATTEMPT_REFILL_SECONDS
            assert 1 <= int(limited.headers["retry-after"]) <= limits.PASSWORD_ATTEMPT_REFILL_SECONDS
        # Removing a device checks the same password: it spends the same attempts.
        removal = client.request(
            "DELETE", f"/v1/devices/{alice.device}", headers=bearer(alice.token), json={"password": PASSWORD}
        )
        assert removal.status_code == 429 and error_code(removal) == "rate-limited"
        assert client.get("/v1/me", headers=bearer(alice.token)).status_code == 200  # sessions stay

        # Another account is untouched; an unknown name is answered like a real one.
        bob_wrong = client.post(
            "/v1/login", json={"username": "bob", "password": "a wrong guess", "device_id": 1}
        )
        assert bob_wrong.status_code == 401 and error_code(bob_wrong) == "invalid-credentials"
        bob_right = client.post(
            "/v1/login",
            content=msgspec.json.encode(
                LoginRequest(username="bob", password=PASSWORD, device=new_device().registration)
            ),
        )
        assert bob_right.status_code == 200
        answers = [login("nobody-here", "a wrong guess") for _ in range(limits.PASSWORD_ATTEMPTS_BURST + 1)]
        burst = ["invalid-credentials"] * limits.PASSWORD_ATTEMPTS_BURST
        assert [error_code(answer) for answer in answers] == [*burst, "rate-limited"]


def test_tokens_only_in_the_authorization_header(database_url: str) -> None:
    with app_client(database_url) as client:
        grant, _ = register(client, "erin")
        missing = client.get("/v1/me")
        assert missing.status_code == 401 and error_code(missing) == "not-authenticated"
        in_url = client.get(f"/v1/me?token={grant.token}")
        assert in_url.status_code == 401
        wrong = client.get("/v1/me", headers=bearer(grant.token[:-2] + "xx"))
        assert wrong.status_code == 401 and error_code(wrong) == "auth-failed"


def test_expired_session_is_refused(sqlite_database_url: str) -> None:
    with app_client(sqlite_database_url, session_ttl_seconds=0) as client:
        grant, _ = register(client, "frank")
        expired = client.get("/v1/me", headers=bearer(grant.token))
        assert expired.status_code == 401 and error_code(expired) == "auth-failed"


def test_invite_only_registration(database_url: str) -> None:
    with app_client(database_url, open_registration=False) as client:
        body = msgspec.to_builtins(
            RegisterRequest(
                username="gina",
                password=PASSWORD,
                profile=Profile(display_name="G"),
                device=new_device().registration,
            )
        )
        closed = client.post("/v1/register", json=body)
        assert closed.status_code == 403 and error_code(closed) == "registration-closed"
        bogus = client.post("/v1/register", json={**body, "invite": "AAAAA-BBBBB-CCCCC-DDDDD"})
        assert bogus.status_code == 403 and error_code(bogus) == "invalid-invite"

        from server.handlers.accounts import create_invite

        services = client.app.state.services  # type: ignore[attr-defined]
        code = client.portal.call(create_invite, services)  # type: ignore[union-attr]
        assert invite_hash(code) == invite_hash(code.lower().replace("-", " "))
        register(client, "gina", invite=code.lower())
        reused = client.post(
            "/v1/register",
            json={
                **body,
                "username": "hugo",
                "invite": code,
                "device": msgspec.to_builtins(new_device().registration),
            },
        )
        assert reused.status_code == 403 and error_code(reused) == "invalid-invite"


def test_unknown_routes_and_methods_answer_structured_errors(sqlite_database_url: str) -> None:
    with app_client(sqlite_database_url) as client:
        missing = client.get("/v1/nothing-here")
        assert missing.status_code == 404 and error_code(missing) == "not-found"
        wrong_method = client.get("/v1/register")
        assert wrong_method.status_code == 405 and error_code(wrong_method) == "invalid-request"


def test_health_and_metrics(sqlite_database_url: str) -> None:
    with app_client(sqlite_database_url) as client:
        health = client.get("/healthz").json()
        assert health["status"] == "ok"
        assert health["storage"] == {"backend": "sqlite", "ok": True}
        assert health["broker"]["ok"] is True
        register(client, "ines")
        client.get("/v1/me")
        metrics = client.get("/metrics").text
        assert 'lien_errors_total{code="not-authenticated"} 1.0' in metrics
        assert "lien_delivery_latency_seconds_bucket" in metrics


def test_password_hashes_are_argon2id(sqlite_database_url: str) -> None:
    with app_client(sqlite_database_url) as client:
        register(client, "jules")
        services = client.app.state.services  # type: ignore[attr-defined]

        async def stored_hash() -> str:
            from server.storage import accounts

            async with services.database.read() as connection:
                user = await accounts.user_by_username(connection, "jules")
            assert user is not None
            return user.password_hash

        digest = client.portal.call(stored_hash)  # type: ignore[union-attr]
        assert digest.startswith("$argon2id$") and PASSWORD not in digest


def test_directory_search_ignores_case_and_accents_paginates_and_hides_the_unlisted(
    database_url: str,
) -> None:
    with app_client(database_url) as client:
        searcher, _ = register(client, "searcher")
        register(
            client, "dr.martin", display_name="Hélène Martin", profession="Médecin généraliste", city="Lyon"
        )
        register(client, "dr.martine", display_name="Martine Dupré", profession="Pharmacienne", city="Lyon")
        register(
            client, "nurse.lyon", display_name="Paul Martinez", profession="Infirmier", city="Villeurbanne"
        )
        register(
            client, "hidden", display_name="Hélène Martinot", profession="Médecin", city="Lyon", unlisted=True
        )
        headers = bearer(searcher.token)

        def users(**params: str) -> list[str]:
            response = client.get("/v1/directory", params=params, headers=headers)
            assert response.status_code == 200, response.text
            return [hit["user"] for hit in response.json()["results"]]

        assert users(q="helene") == ["dr.martin"]
        assert users(q="MARTIN") == ["dr.martin", "dr.martine", "nurse.lyon"]
        assert users(q="martin", city="lyon") == ["dr.martin", "dr.martine"]
        assert users(profession="medecin") == ["dr.martin"]
        assert users(q="martin%") == [] and users(q="_") == []
        # Unlisted: never in a search, yet reachable by username.
        assert "hidden" not in users(q="martinot") + users(q="helene")
        assert client.get("/v1/users/hidden", headers=headers).status_code == 200

        first = client.get("/v1/directory", params={"q": "martin", "limit": "2"}, headers=headers).json()
        assert [hit["user"] for hit in first["results"]] == ["dr.martin", "dr.martine"]
        second = client.get(
            "/v1/directory", params={"q": "martin", "limit": "2", "cursor": first["next"]}, headers=headers
        ).json()
        assert [hit["user"] for hit in second["results"]] == ["nurse.lyon"] and second["next"] is None

        assert client.get("/v1/directory", params={"q": "martin"}).status_code == 401
        for params in (
            {"limit": "0"},
            {"limit": "51"},
            {"limit": "x"},
            {"cursor": "garbage!"},
            {"q": "x" * 129},
        ):
            bad = client.get("/v1/directory", params=params, headers=headers)
            assert (bad.status_code, error_code(bad)) == (400, "invalid-request"), params

        # Going unlisted later hides a listed user; the change is kept in the profile.
        late, _ = register(client, "late.hider", display_name="Ana Late")
        assert users(q="late") == ["late.hider"]
        changed = client.patch("/v1/me", headers=bearer(late.token), json={"unlisted": True})
        assert changed.json()["profile"]["unlisted"] is True
        assert users(q="late") == []

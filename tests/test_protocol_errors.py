"""lien.protocol.errors: stable codes, close codes, rebuilding from the wire."""

from __future__ import annotations

import re

import pytest

from lien.protocol import errors

# The published list (docs/protocol.md §8): code -> (class name, HTTP status, close code).
# A rename, a removal or a changed status must show up here as a failing test.
PINNED: dict[str, tuple[str, int, int | None]] = {
    "malformed-frame": ("MalformedFrame", 400, None),
    "unknown-frame-type": ("UnknownFrameType", 400, None),
    "frame-too-large": ("FrameTooLarge", 413, None),
    "unsupported-version": ("UnsupportedVersion", 400, 4426),
    "not-authenticated": ("NotAuthenticated", 401, 4401),
    "auth-failed": ("AuthenticationFailed", 401, 4401),
    "auth-timeout": ("AuthTimeout", 400, 4408),
    "already-authenticated": ("AlreadyAuthenticated", 400, None),
    "invalid-credentials": ("InvalidCredentials", 401, None),
    "invalid-password": ("InvalidPassword", 403, None),
    "invalid-request": ("InvalidRequest", 400, None),
    "body-too-large": ("BodyTooLarge", 413, None),
    "not-found": ("NotFound", 404, None),
    "username-taken": ("UsernameTaken", 409, None),
    "registration-closed": ("RegistrationClosed", 403, None),
    "invalid-invite": ("InvalidInvite", 403, None),
    "unknown-user": ("UnknownUser", 404, None),
    "unknown-device": ("UnknownDevice", 404, None),
    "too-many-devices": ("TooManyDevices", 409, None),
    "invalid-prekey-signature": ("InvalidPrekeySignature", 400, None),
    "too-many-prekeys": ("TooManyPrekeys", 413, None),
    "devices-mismatch": ("DevicesMismatch", 409, None),
    "envelope-too-large": ("EnvelopeTooLarge", 413, None),
    "too-many-recipients": ("TooManyRecipients", 413, None),
    "too-many-in-flight": ("TooManyInFlight", 429, None),
    "idempotency-conflict": ("IdempotencyConflict", 409, None),
    "unknown-message": ("UnknownMessage", 404, None),
    "not-a-recipient": ("NotARecipient", 403, None),
    "not-a-contact": ("NotAContact", 403, None),
    "invalid-ack": ("InvalidAck", 400, None),
    "too-many-watched": ("TooManyWatched", 413, None),
    "invalid-receipt": ("InvalidReceipt", 400, None),
    "unknown-group": ("UnknownGroup", 404, None),
    "not-a-member": ("NotAMember", 403, None),
    "role-required": ("RoleRequired", 403, None),
    "unknown-member": ("UnknownMember", 404, None),
    "already-member": ("AlreadyMember", 409, None),
    "group-full": ("GroupFull", 409, None),
    "stale-membership": ("StaleMembership", 409, None),
    "rate-limited": ("RateLimited", 429, None),
    "too-many-connections": ("TooManyConnections", 400, 4429),
    "too-slow": ("TooSlow", 400, 4008),
    "replaced": ("SessionReplaced", 400, 4409),
    "unavailable": ("ServiceUnavailable", 503, 1012),
    "internal-error": ("InternalError", 500, None),
}


def _all_subclasses(cls: type[errors.LienError]) -> list[type[errors.LienError]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


def test_the_pinned_list_is_the_whole_list() -> None:
    assert sorted(errors.ERRORS_BY_CODE) == sorted(PINNED)
    actual = {
        code: (cls.__name__, cls.http_status, cls.close_code) for code, cls in errors.ERRORS_BY_CODE.items()
    }
    assert actual == PINNED


def test_codes_are_unique_and_well_formed() -> None:
    classes = [cls for cls in _all_subclasses(errors.LienError) if cls.__module__ == errors.__name__]
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)) == len(PINNED)
    assert errors.LienError.code not in codes
    for code in codes:
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", code), code


@pytest.mark.parametrize("cls", list(errors.ERRORS_BY_CODE.values()), ids=lambda c: c.code)
def test_close_codes_and_statuses(cls: type[errors.LienError]) -> None:
    assert cls.close_code is None or 4000 <= cls.close_code <= 4999 or cls.close_code == 1012
    assert 400 <= cls.http_status <= 599


@pytest.mark.parametrize("cls", [errors.LienError, *errors.ERRORS_BY_CODE.values()], ids=lambda c: c.code)
def test_public_messages_are_plain_words(cls: type[errors.LienError]) -> None:
    message = cls.public_message
    assert message and message[0].isupper() and message.endswith(".")
    for placeholder in ("{", "}", "%s", "%d", "%r", "%(", "<", ">"):
        assert placeholder not in message, (cls.code, placeholder)


@pytest.mark.parametrize("code", sorted(PINNED))
def test_error_from_wire_rebuilds_the_typed_class(code: str) -> None:
    error = errors.error_from_wire(code, "said the server", details={"missing": [3]}, retry_after=2.5)
    assert type(error) is errors.ERRORS_BY_CODE[code]
    assert type(error).__name__ == PINNED[code][0]
    assert error.code == code
    assert error.message == "said the server" == str(error)
    assert error.details == {"missing": [3]}
    assert error.retry_after == 2.5


def test_error_from_wire_keeps_an_unknown_code() -> None:
    error = errors.error_from_wire("brand-new-code", "from a newer server")
    assert type(error) is errors.LienError
    assert error.code == "brand-new-code"
    assert error.message == "from a newer server"
    # The class attribute is untouched: the next plain LienError keeps the generic code.
    assert errors.LienError().code == "error"


def test_defaults_and_repr() -> None:
    error = errors.TooManyInFlight()
    assert error.message == errors.TooManyInFlight.public_message
    assert error.details is None and error.retry_after is None
    assert repr(error) == f"TooManyInFlight(code='too-many-in-flight', message={error.message!r})"
    assert isinstance(error, errors.LienError) and isinstance(error, Exception)

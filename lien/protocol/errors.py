"""The errors a client can see: one type per failure, each with a stable code.

This module is the single list (docs/protocol.md §8 mirrors it). Each error
carries:

* ``code``: a stable string clients branch on; never reused for a new meaning;
* ``http_status``: the status when it answers an HTTP request;
* ``close_code``: the WebSocket close code when the error ends the
  connection, ``None`` when the connection keeps serving;
* ``public_message``: plain words safe to show a user. Internal details go to
  the server log at most, never into an error.

The SDK rebuilds the same typed exception from an ``error`` frame or an HTTP
error body with :func:`error_from_wire`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LienError(Exception):
    """Base of every error the protocol can report to a client."""

    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 400
    close_code: ClassVar[int | None] = None
    public_message: ClassVar[str] = "The request failed."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message or self.public_message
        self.details = details
        self.retry_after = retry_after
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


# --- framing -------------------------------------------------------------


class MalformedFrame(LienError):
    code = "malformed-frame"
    public_message = "The frame is not valid JSON of a known shape."


class UnknownFrameType(LienError):
    code = "unknown-frame-type"
    public_message = "The frame type is not part of the protocol."


class FrameTooLarge(LienError):
    code = "frame-too-large"
    http_status = 413
    public_message = "The frame is larger than the server accepts."


class UnsupportedVersion(LienError):
    code = "unsupported-version"
    close_code = 4426
    public_message = "This protocol version is not supported by the server."


# --- authentication ------------------------------------------------------


class NotAuthenticated(LienError):
    code = "not-authenticated"
    http_status = 401
    close_code = 4401
    public_message = "Authenticate first."


class AuthenticationFailed(LienError):
    code = "auth-failed"
    http_status = 401
    close_code = 4401
    public_message = "The session token is invalid, expired or revoked."


class AuthTimeout(LienError):
    code = "auth-timeout"
    close_code = 4408
    public_message = "No authentication was received in time."


class AlreadyAuthenticated(LienError):
    code = "already-authenticated"
    public_message = "This connection is already authenticated."


class InvalidCredentials(LienError):
    code = "invalid-credentials"
    http_status = 401
    public_message = "Wrong username or password."


class InvalidPassword(LienError):
    """The account's password, asked again for an action a stolen session token must not allow."""

    code = "invalid-password"
    http_status = 403
    public_message = "The password is wrong."


# --- accounts and requests -----------------------------------------------


class InvalidRequest(LienError):
    code = "invalid-request"
    public_message = "The request is not valid."


class BodyTooLarge(LienError):
    code = "body-too-large"
    http_status = 413
    public_message = "The request body is larger than the server accepts."


class NotFound(LienError):
    code = "not-found"
    http_status = 404
    public_message = "No such resource."


class UsernameTaken(LienError):
    code = "username-taken"
    http_status = 409
    public_message = "This username is already taken."


class RegistrationClosed(LienError):
    code = "registration-closed"
    http_status = 403
    public_message = "Registration needs an invite code on this server."


class InvalidInvite(LienError):
    code = "invalid-invite"
    http_status = 403
    public_message = "The invite code is unknown, used or expired."


class UnknownUser(LienError):
    code = "unknown-user"
    http_status = 404
    public_message = "No such user."


class UnknownDevice(LienError):
    code = "unknown-device"
    http_status = 404
    public_message = "No such device for this account."


class TooManyDevices(LienError):
    code = "too-many-devices"
    http_status = 409
    public_message = "This account has reached its number of devices."


# --- keys ----------------------------------------------------------------


class InvalidPrekeySignature(LienError):
    code = "invalid-prekey-signature"
    public_message = "The signed prekey's signature does not verify with the identity key."


class TooManyPrekeys(LienError):
    code = "too-many-prekeys"
    http_status = 413
    public_message = "Too many one-time prekeys in one upload or stored for the device."


# --- messaging -----------------------------------------------------------


class DevicesMismatch(LienError):
    """The copies do not match the recipient's and sender's current devices.

    ``details`` holds ``missing`` (device ids that need a copy) and ``extra``
    (device ids that do not exist or are not addressed); the client refreshes
    its device lists and sends again with the same client message id.
    """

    code = "devices-mismatch"
    http_status = 409
    public_message = "The message does not match the current devices; refresh and resend."


class EnvelopeTooLarge(LienError):
    code = "envelope-too-large"
    http_status = 413
    public_message = "The message is larger than the server accepts."


class TooManyRecipients(LienError):
    code = "too-many-recipients"
    http_status = 413
    public_message = "The message has more device copies than the server accepts."


class TooManyInFlight(LienError):
    code = "too-many-in-flight"
    http_status = 429
    public_message = "Too many messages are awaiting acceptance on this connection."


class IdempotencyConflict(LienError):
    code = "idempotency-conflict"
    http_status = 409
    public_message = "This client message id was already used for a different message."


class UnknownMessage(LienError):
    code = "unknown-message"
    http_status = 404
    public_message = "No such message."


class NotARecipient(LienError):
    code = "not-a-recipient"
    http_status = 403
    public_message = "Only a recipient of a message can send a receipt for it."


class InvalidReceipt(LienError):
    """The receipt's signature does not verify with the device's identity key, or its hash matches no copy."""

    code = "invalid-receipt"
    public_message = "The receipt is not signed by this device over a ciphertext it received."


class NotAContact(LienError):
    code = "not-a-contact"
    http_status = 403
    public_message = "Presence and typing are shared only between contacts."


class InvalidAck(LienError):
    code = "invalid-ack"
    public_message = "The acknowledged sequence number was never delivered to this device."


class TooManyWatched(LienError):
    code = "too-many-watched"
    http_status = 413
    public_message = "Too many users watched for presence."


# --- groups --------------------------------------------------------------


class UnknownGroup(LienError):
    code = "unknown-group"
    http_status = 404
    public_message = "No such group."


class NotAMember(LienError):
    code = "not-a-member"
    http_status = 403
    public_message = "Only members of this group may do that."


class RoleRequired(LienError):
    """The caller is a member, but its role does not allow this change (``details.required``)."""

    code = "role-required"
    http_status = 403
    public_message = "Your role in this group does not allow this change."


class UnknownMember(LienError):
    code = "unknown-member"
    http_status = 404
    public_message = "This user is not a member of the group."


class AlreadyMember(LienError):
    code = "already-member"
    http_status = 409
    public_message = "This user is already a member of the group."


class GroupFull(LienError):
    code = "group-full"
    http_status = 409
    public_message = "The group has reached its number of members."


class StaleMembership(LienError):
    """The send names an older membership epoch than the group's (``details.epoch``): refresh and resend."""

    code = "stale-membership"
    http_status = 409
    public_message = "The group's membership changed; refresh it and send again."


# --- flow control and service --------------------------------------------


class RateLimited(LienError):
    code = "rate-limited"
    http_status = 429
    public_message = "Too many requests; retry later."


class TooManyConnections(LienError):
    code = "too-many-connections"
    close_code = 4429
    public_message = "Too many devices of this account are connected at once; retry later."


class TooSlow(LienError):
    code = "too-slow"
    close_code = 4008
    public_message = "The connection fell too far behind; reconnect to catch up."


class SessionReplaced(LienError):
    code = "replaced"
    close_code = 4409
    public_message = "This device connected again elsewhere; this connection is closed."


class ServiceUnavailable(LienError):
    code = "unavailable"
    http_status = 503
    close_code = 1012
    public_message = "The service is restarting or unavailable; retry shortly."


class InternalError(LienError):
    code = "internal-error"
    http_status = 500
    close_code = None
    public_message = "The server failed to handle the request; it has been logged."


def _all_error_types() -> dict[str, type[LienError]]:
    found: dict[str, type[LienError]] = {}
    pending: list[type[LienError]] = [LienError]
    while pending:
        cls = pending.pop()
        if cls is not LienError:
            if cls.code in found:
                raise RuntimeError(f"duplicate error code {cls.code}")
            found[cls.code] = cls
        pending.extend(cls.__subclasses__())
    return found


ERRORS_BY_CODE: dict[str, type[LienError]] = _all_error_types()


def error_from_wire(
    code: str,
    message: str,
    *,
    details: dict[str, Any] | None = None,
    retry_after: float | None = None,
) -> LienError:
    """Rebuild the typed error a server reported (unknown codes give a plain LienError)."""
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        error = LienError(message, details=details, retry_after=retry_after)
        error.code = code  # type: ignore[misc]
        return error
    return cls(message, details=details, retry_after=retry_after)

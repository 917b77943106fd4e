"""Request parsing, authentication and the one mapping from errors to HTTP responses."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from lien.protocol import errors, limits
from lien.protocol.api import ErrorBody, ErrorResponse
from server.handlers import accounts
from server.services import Caller, Services

logger = logging.getLogger(__name__)

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def json_response(body: Any, status_code: int = 200) -> Response:
    return Response(_encoder.encode(body), status_code=status_code, media_type="application/json")


async def parse_body(request: Request, body_type: type[T]) -> T:
    """Decode and validate a JSON body of at most MAX_HTTP_BODY_BYTES."""
    return _decode(await _read_bounded(request), body_type)


async def parse_optional_body(request: Request, body_type: type[T]) -> T | None:
    """Like :func:`parse_body`, but an empty body gives None."""
    raw = await _read_bounded(request)
    return None if not raw.strip() else _decode(raw, body_type)


async def _read_bounded(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.MAX_HTTP_BODY_BYTES:
            raise errors.BodyTooLarge(f"Request bodies are limited to {limits.MAX_HTTP_BODY_BYTES} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(raw: bytes, body_type: type[T]) -> T:
    try:
        return msgspec.json.decode(raw, type=body_type)
    except msgspec.ValidationError as exc:
        raise errors.InvalidRequest(f"Invalid request: {exc}.") from None
    except msgspec.DecodeError:
        raise errors.InvalidRequest("The body is not valid JSON.") from None


async def authenticated(request: Request) -> Caller:
    """The caller behind ``Authorization: Bearer <token>`` (tokens never travel in URLs)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.NotAuthenticated("Send the session token as `Authorization: Bearer <token>`.")
    return await accounts.authenticate(services_of(request), token.strip())


def error_response(error: errors.LienError) -> Response:
    body = ErrorResponse(
        error=ErrorBody(
            code=error.code, message=error.message, retry_after=error.retry_after, details=error.details
        )
    )
    response = json_response(body, status_code=error.http_status)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return response


async def on_lien_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.LienError)
    services_of(request).metrics.errors.labels(exc.code).inc()
    return error_response(exc)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(errors.NotFound())
    if exc.status_code == 405:
        error = errors.InvalidRequest("This method is not allowed here.")
        response = error_response(error)
        response.status_code = 405
        return response
    return error_response(errors.InvalidRequest(str(exc.detail)))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(errors.InternalError())

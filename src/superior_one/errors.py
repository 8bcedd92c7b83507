"""Application errors and their one rendering: RFC 9457 problem details.

Raise a subclass of :class:`AppError` where the rule lives; the handlers here
turn it, validation errors, database constraint errors and anything unexpected
into ``application/problem+json`` with ``type``, ``title``, ``status``,
``detail``, ``code`` and ``requestId``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import (
    DataError,
    IntegrityError,
    InterfaceError,
    NoResultFound,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from superior_one.observability.metrics import ErrorClass, count_error
from superior_one.redis import REDIS_UNAVAILABLE_ERRORS

log = structlog.get_logger(__name__)

# Exceptions that mean a dependency failed rather than our code: the database or
# its pool, Redis, or the network under an HTTP client.
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    httpx.TransportError,
    *REDIS_UNAVAILABLE_ERRORS,
)

PROBLEM_TYPE_BASE = "https://docs.superior-one.example/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


class AppError(Exception):
    """Base of every error the API reports on purpose.

    Subclasses set ``status``, ``code`` and ``title``; the instance carries the
    ``detail`` (what was wrong and what to do) and optional extra members.
    """

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"
    # When true, the request's session commits before the error is rendered:
    # for errors that record something on purpose (a revoked token family).
    keep_changes: ClassVar[bool] = False

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFoundError(AppError):
    status = 404
    code = "not_found"
    title = "Not found"


class ConflictError(AppError):
    status = 409
    code = "conflict"
    title = "Conflict"


class PermissionDeniedError(AppError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class AuthenticationError(AppError):
    status = 401
    code = "unauthenticated"
    title = "Authentication required"


class UnprocessableError(AppError):
    status = 422
    code = "unprocessable"
    title = "Unprocessable request"


class RateLimitedError(AppError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class ServiceUnavailableError(AppError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"


def problem_response(
    request: Request | None,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "requestId": _request_id(request),
    }
    body.update(extra)
    _note_error(request, status, code)
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=headers
    )


def error_class_for_status(status: int) -> ErrorClass:
    """4xx: the client's mistake; 502/503/504: a dependency's failure; other 5xx: ours."""
    if status < 500:
        return "client"
    return "dependency" if status in (502, 503, 504) else "server"


def classify_exception(exc: BaseException) -> ErrorClass:
    """Classify an error as client, server or dependency (requests and jobs alike)."""
    if isinstance(exc, AppError):
        return error_class_for_status(exc.status)
    if isinstance(exc, (RequestValidationError, NoResultFound)):
        return "client"
    if isinstance(exc, StarletteHTTPException):
        return error_class_for_status(exc.status_code)
    if isinstance(exc, DEPENDENCY_ERRORS):
        return "dependency"
    return "server"


def _note_error(request: Request | None, status: int, code: str) -> None:
    # Every error response passes here once: count it, and leave its class and
    # code for the request's access line.
    error_class = error_class_for_status(status)
    count_error("http", error_class, code)
    if request is not None:
        state = request.scope.setdefault("state", {})
        state["error_class"] = error_class
        state["error_code"] = code


def _request_id(request: Request | None) -> str | None:
    if request is None:
        return None
    value = request.scope.get("state", {}).get("request_id")
    return str(value) if value is not None else None


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "pickup", "lat") -> "pickup.lat"; ("query", "limit") -> "limit"
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _app_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    headers = exc.extra.pop("headers", None)
    if exc.status == 401 and headers is None:
        # RFC 6750: a 401 names the scheme the client should use.
        headers = {"WWW-Authenticate": f'Bearer error="invalid_token", code="{exc.code}"'}
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        headers=headers,
        **exc.extra,
    )


# Messages for validation error types where pydantic's own message does not give the fix.
_FIX_MESSAGES = {
    "timezone_aware": "The time has no UTC offset. Add one such as Z or -05:00, "
    "for example 2024-07-01T08:00:00-05:00.",
}


def _not_json_message(request: Request) -> str:
    content_type = request.headers.get("content-type", "")
    return (
        f"The body was not read as JSON because the Content-Type header is {content_type!r}. "
        "Send the header Content-Type: application/json with the JSON body."
    )


async def _validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors: list[dict[str, Any]] = []
    not_json = False
    for err in exc.errors():
        error_type = err.get("type", "value_error")
        message = _FIX_MESSAGES.get(error_type, err.get("msg", "invalid value"))
        # FastAPI parses the body as JSON only when the Content-Type is JSON or missing.
        # Under any other type the schema receives the raw bytes.
        if isinstance(err.get("input"), bytes):
            not_json = True
            message = _not_json_message(request)
        elif _is_decoded_plus(err):
            message += (
                ". A '+' in a query string reads as a space: write the UTC offset's "
                "plus sign as %2B, for example 2024-07-01T08:00:00%2B06:00."
            )
        errors.append(
            {
                # A JSON syntax error's location is a character offset, not a field.
                "field": "body"
                if error_type == "json_invalid"
                else _field_path(err.get("loc", ())),
                "message": message,
                "type": error_type,
            }
        )
    if not_json:
        detail = _not_json_message(request)
    else:
        fields = ", ".join(sorted({e["field"] for e in errors}))
        detail = f"Invalid or missing fields: {fields}. Correct them and resend the request."
    return validation_problem(request, errors, detail)


def _is_decoded_plus(err: Mapping[str, Any]) -> bool:
    """Return whether a query time failed because its '+' offset was decoded as a space."""
    value = err.get("input")
    location = err.get("loc", ())
    return (
        bool(location)
        and location[0] == "query"
        and str(err.get("type", "")).startswith("datetime")
        and isinstance(value, str)
        and " " in value.strip()
    )


def validation_problem(
    request: Request | None, errors: list[dict[str, Any]], detail: str
) -> Response:
    """Build the 422 for invalid input, one ``errors`` item (field, message, type) per fault."""
    return problem_response(
        request,
        status=422,
        code="validation_failed",
        title="Request validation failed",
        detail=detail,
        errors=errors,
    )


async def _data_error_handler(request: Request, exc: Exception) -> Response:
    # A value that passed the schemas but not PostgreSQL (a bound the schema missed).
    assert isinstance(exc, DataError)
    sqlstate = getattr(exc.orig, "sqlstate", None)
    log.warning("request.data_error", sqlstate=sqlstate, error=type(exc.orig).__name__)
    return problem_response(
        request,
        status=422,
        code="invalid_value",
        title="A value cannot be stored",
        detail="A value in the request cannot be stored, for example a number out of range "
        "or text with a NUL character. Correct it and resend the request.",
    )


async def _integrity_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IntegrityError)
    sqlstate = getattr(exc.orig, "sqlstate", None)
    constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
    if sqlstate == "23505":
        return problem_response(
            request,
            status=409,
            code="already_exists",
            title="Conflict",
            detail="A record with the same unique value already exists.",
            constraint=constraint,
        )
    if sqlstate == "23503":
        return problem_response(
            request,
            status=409,
            code="reference_conflict",
            title="Conflict",
            detail="The request refers to a record that does not exist or is still in use.",
            constraint=constraint,
        )
    log.error("request.integrity_error", sqlstate=sqlstate, constraint=constraint)
    return _internal_error(request)


async def _not_found_handler(request: Request, exc: Exception) -> Response:
    return problem_response(
        request, status=404, code="not_found", title="Not found", detail="Resource not found."
    )


# FastAPI's 400 when the body's bytes cannot be decoded at all: not UTF-8, or nested
# deeper than the JSON parser's recursion limit. A syntax error is a 422 instead.
_FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_PARSE_ERROR:
        message = (
            "The body could not be read as JSON. Send UTF-8 encoded JSON that is not "
            "nested hundreds of levels deep."
        )
        return validation_problem(
            request,
            [{"field": "body", "message": message, "type": "body_unreadable"}],
            message,
        )
    codes = {
        404: ("route_not_found", "Not found", "No route matches this path."),
        405: ("method_not_allowed", "Method not allowed", "This path does not accept the method."),
    }
    code, title, detail = codes.get(exc.status_code, ("http_error", "HTTP error", str(exc.detail)))
    return problem_response(
        request,
        status=exc.status_code,
        code=code,
        title=title,
        detail=detail,
        headers=dict(exc.headers) if exc.headers else None,
    )


def _internal_error(request: Request) -> Response:
    return problem_response(
        request,
        status=500,
        code="internal_error",
        title="Internal server error",
        detail="The server failed to handle the request. Retry later; quote the request id "
        "when you report it.",
    )


def unhandled_error_response(request: Request, exc: Exception) -> Response:
    """The response to an exception no handler took: 503 when a dependency
    (PostgreSQL, Redis, an external service) failed, 500 otherwise. Logging it is
    the caller's job (the request middleware's access line)."""
    if classify_exception(exc) == "dependency":
        return problem_response(
            request,
            status=503,
            code="dependency_unavailable",
            title="Service unavailable",
            detail="A service the platform depends on did not answer. Retry in a few "
            "seconds; quote the request id if it persists.",
            headers={"Retry-After": "5"},
        )
    return _internal_error(request)


async def _unhandled_error_handler(request: Request, exc: Exception) -> Response:
    # Reached only for exceptions raised outside the request middleware.
    log.exception("request.unhandled_error", error_type=type(exc).__name__)
    return unhandled_error_response(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(IntegrityError, _integrity_error_handler)
    app.add_exception_handler(DataError, _data_error_handler)
    app.add_exception_handler(NoResultFound, _not_found_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(Exception, _unhandled_error_handler)

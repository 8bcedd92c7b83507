"""Pure ASGI middleware: request ids, the access log line, HTTP metrics, the body size limit.

These are plain ASGI callables rather than ``BaseHTTPMiddleware`` because they
run on every request and the base class adds a task and a copy per request.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any
from urllib.parse import parse_qsl

import structlog
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from superior_one.errors import problem_response, unhandled_error_response, validation_problem
from superior_one.observability.logging import clear_bound_context, write_access_line
from superior_one.observability.metrics import record_http_request
from superior_one.observability.tracing import SERVER_SPAN_SCOPE_KEY

log = structlog.get_logger("superior_one.access")

# A client-supplied request id is reused only when it is short and plain.
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestContextMiddleware:
    """Assign a request id, bind it to the log context, write one access line and
    record the request's metrics.

    An exception no handler turned into a response is rendered here and logged
    once, on the access line with its traceback, instead of travelling on to the
    server, which would log it a second time without the request id.
    """

    def __init__(self, app: ASGIApp, *, metrics: bool = True) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # 32 random hex digits, as uuid4().hex but without building a UUID object.
        request_id = _incoming_request_id(scope) or os.urandom(16).hex()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        clear_bound_context()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status_code = 500
        response_started = False
        error: Exception | None = None

        async def send_with_request_id(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                status_code = message["status"]
                response_started = True
                # Before the body: the tracing middleware ends the span with the last of it.
                _complete_server_span(scope, error)
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            if nul_parameters := _parameters_with_nul(scope):
                await _reject_nul_in_query(scope, receive, send_with_request_id, nul_parameters)
            else:
                await self.app(scope, receive, send_with_request_id)
        except Exception as exc:
            error = exc
            if response_started:
                raise
            response = unhandled_error_response(Request(scope), exc)
            await response(scope, receive, send_with_request_id)
        finally:
            duration_s = time.perf_counter() - started
            route = _route_template(scope)
            if self.metrics:
                record_http_request(scope["method"], route, status_code, duration_s)
            fields: dict[str, Any] = {
                "method": scope["method"],
                "route": route,
                "status": status_code,
                "duration_ms": round(duration_s * 1000, 2),
            }
            if "error_code" in state:
                fields["error_class"] = state["error_class"]
                fields["error_code"] = state["error_code"]
            if error is not None:
                log.error("http.request", exc_info=error, **fields)
            else:
                write_access_line(fields)
            clear_bound_context()


def _parameters_with_nul(scope: Scope) -> list[str]:
    query: bytes = scope.get("query_string", b"")
    if b"%00" not in query:
        return []
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    return sorted({name for name, value in pairs if "\x00" in name + value})


async def _reject_nul_in_query(
    scope: Scope, receive: Receive, send: Send, names: list[str]
) -> None:
    # Checked before routing, for every route: no parameter could store the value.
    response = validation_problem(
        Request(scope),
        [
            {
                "field": name,
                "message": "must not contain a NUL character (%00)",
                "type": "value_error",
            }
            for name in names
        ],
        f"Invalid query parameters: {', '.join(names)}. Remove the NUL character (%00) "
        "and resend the request.",
    )
    await response(scope, receive, send)


def _route_template(scope: Scope) -> str:
    return getattr(scope.get("route"), "path", None) or "unmatched"


def _complete_server_span(scope: Scope, error: Exception | None) -> None:
    # The tracing middleware starts the request's span before routing, so the
    # route template is set here. Unhandled errors end here too, never reaching
    # the tracing middleware, so they are recorded here.
    span: trace.Span | None = scope.get(SERVER_SPAN_SCOPE_KEY)
    if span is None or not span.is_recording():
        return
    route = _route_template(scope)
    if route != "unmatched":
        span.update_name(f"{scope['method']} {route}")
        span.set_attribute("http.route", route)
    if error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _REQUEST_ID_PATTERN.match(candidate):
                return candidate
    return None


class BodySizeLimitMiddleware:
    """Reject request bodies above ``max_bytes`` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._reject(scope, receive, send)
            return

        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLargeError
            return message

        rejected = False

        async def replacing_send(message: Message) -> None:
            # FastAPI turns a failed body read into its own 400; once the limit
            # was crossed, that response is replaced by the 413.
            nonlocal rejected
            if too_large:
                if not rejected:
                    rejected = True
                    await self._reject(scope, receive, send)
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, replacing_send)
        except _BodyTooLargeError:
            if not rejected:
                await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            Request(scope),
            status=413,
            code="request_too_large",
            title="Request body too large",
            detail=f"The request body exceeds {self.max_bytes} bytes. Send a smaller body "
            "or split a batch into several requests.",
        )
        await response(scope, receive, send)


class _BodyTooLargeError(Exception):
    pass


def _content_length(scope: Scope) -> int | None:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None

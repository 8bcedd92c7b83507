"""A local payment provider speaking the subset of the Stripe API the platform uses.

Wire format as Stripe's v1 API: form-encoded requests (``metadata[key]=value``),
``Authorization: Bearer <secret key>``, JSON responses, Stripe's error body
``{"error": {"type", "code", "decline_code", "message", "param"}}`` and status
codes, so the official ``stripe`` SDK talks to it unchanged.

Endpoints: PaymentIntents (create, confirm, retrieve), Refunds, Accounts
(Connect), Transfers, and Charges (retrieve).

Idempotency follows Stripe's rules for POST requests with ``Idempotency-Key``.
The first response is stored once the endpoint has run (successes and card
declines). The same key with the same method, path and parameters replays it
with ``Idempotent-Replayed: true``. Other parameters get 400
``idempotency_error``, and a request while the first is still running gets 409
``idempotency_key_in_use``. Validation errors and injected 5xx are not stored,
as at Stripe, so they can be retried. Keys expire after
``SimulatorConfig.idempotency_ttl_s``.

Events go to ``SimulatorConfig.webhook_url`` as Stripe sends them: a JSON event
signed with ``Stripe-Signature`` (one ``v1`` per configured secret).

Admin endpoints for tests (not part of Stripe's API):

- ``POST /__sim/faults`` replaces the fault plan (:class:`FaultPlan` as JSON),
  ``GET`` shows it, ``DELETE`` clears it.
- ``GET /__sim/stats``: counters (PaymentIntents created, replays, webhooks...).
- ``GET /__sim/requests``: every API request with its idempotency key and status.
- ``GET /__sim/events``: every event created; ``POST /__sim/webhooks/flush``
  delivers events held back by the reorder fault.
- ``POST /__sim/accounts/{id}/activate``: finish a connected account's
  onboarding (payouts and transfers enabled) and send ``account.updated``.
- ``POST /__sim/reset``: forget all objects, keys, events, faults and counters.

Card outcomes: any ``pm_...`` id succeeds, except Stripe's test ids
``pm_card_chargeDeclined*`` (see ``TEST_DECLINES``) and the decline fault.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx
import structlog
import uvicorn
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from superior_one.payments.webhooks import SIGNATURE_HEADER, build_signature_header
from superior_one.simulators.server import ServerThread

log = structlog.get_logger(__name__)

API_VERSION = "2026-10-28.endive"
DEFAULT_API_KEY = "sk_test_simulator"
# Not secrets: fixed values that the development set-up and the tests share.
DEFAULT_WEBHOOK_SECRET = "whsec_simulator"  # noqa: S105
MAX_IDEMPOTENCY_KEY_LENGTH = 255
# Stripe's minimum charge for USD is 50 cents.
MIN_CHARGE_CENTS = {"usd": 50}

# Stripe's test PaymentMethod ids that decline, with the decline code and
# whether Stripe reports it under the error code rather than a decline code.
TEST_DECLINES: dict[str, str] = {
    "pm_card_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_chargeDeclinedLostCard": "lost_card",
    "pm_card_chargeDeclinedStolenCard": "stolen_card",
    "pm_card_chargeDeclinedFraudulent": "fraudulent",
    "pm_card_chargeDeclinedExpiredCard": "expired_card",
}


# --- Configuration and faults -----------------------------------------------


@dataclass(slots=True)
class SimulatorConfig:
    api_key: str = DEFAULT_API_KEY
    # Where events are POSTed; None records events without sending them.
    webhook_url: str | None = None
    # One v1 signature per secret, as Stripe sends during a secret rotation.
    webhook_secrets: tuple[str, ...] = (DEFAULT_WEBHOOK_SECRET,)
    webhook_max_attempts: int = 3
    webhook_retry_delay_s: float = 0.2
    webhook_timeout_s: float = 5.0
    idempotency_ttl_s: float = 24 * 3600
    # True skips onboarding: new connected accounts can receive transfers at once.
    accounts_active_on_create: bool = False


class ApiFault(BaseModel):
    """A failure injected into API requests that match ``method`` and the ``path`` prefix.

    - ``decline``: the next charge (PaymentIntent create with confirm, or
      confirm) is declined with ``decline_code``.
    - ``server_error``: respond with ``status`` before the endpoint runs, so
      nothing happens and nothing is stored under the idempotency key.
    - ``timeout``: run the endpoint and store its response, then hold the
      response for ``delay_s`` so the client times out (a lost response).
    - ``latency``: wait ``delay_s`` inside the endpoint, while the
      idempotency key is marked in progress.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["decline", "server_error", "timeout", "latency"]
    method: str = "POST"
    path: str = "/v1/payment_intents"
    # How many matching requests fail; None means every one until cleared.
    times: int | None = Field(default=1, ge=1)
    decline_code: str = "generic_decline"
    advice_code: str | None = None
    status: int = Field(default=500, ge=500, le=599)
    delay_s: float = Field(default=1.0, ge=0, le=60)

    def matches(self, method: str, path: str) -> bool:
        return self.method == method and path.startswith(self.path)


class WebhookFaults(BaseModel):
    """Faults applied to webhook delivery."""

    model_config = ConfigDict(extra="forbid")

    # Wait before each delivery, in seconds.
    delay_s: float = Field(default=0.0, ge=0, le=60)
    # Extra copies of each event (same event id), sent right after the first.
    duplicates: int = Field(default=0, ge=0, le=10)
    # 0 delivers in order. N >= 2 keeps events back until N are waiting, then
    # sends them newest first. POST /__sim/webhooks/flush sends a partial batch.
    reorder_window: int = Field(default=0, ge=0, le=100)


class FaultPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api: list[ApiFault] = []
    webhooks: WebhookFaults = WebhookFaults()


# --- Errors and results -----------------------------------------------------


class StripeApiError(Exception):
    """An error response in Stripe's format that is not stored under the idempotency key."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = _error_body(error_type, message, code=code, param=param)


def _error_body(
    error_type: str,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    error: dict[str, Any] = {"type": error_type, "message": message}
    if code is not None:
        error["code"] = code
    if param is not None:
        error["param"] = param
    error.update(extra)
    return {"error": error}


@dataclass(frozen=True, slots=True)
class ApiResult:
    """An endpoint's response; stored under the idempotency key when one was sent."""

    status: int
    body: dict[str, Any]


@dataclass(slots=True)
class _StoredResponse:
    method: str
    path: str
    fingerprint: str
    status: int
    body: bytes
    request_id: str
    stored_at: float


@dataclass(slots=True)
class _Delivery:
    event_id: str
    body: bytes


# --- Form decoding ----------------------------------------------------------

_FORM_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")


def decode_form(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Nest Stripe's form keys: ``metadata[a]=1`` -> ``{"metadata": {"a": "1"}}``.

    Keys with numeric indexes (``expand[0]``) become lists.
    """
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _FORM_KEY.fullmatch(key)
        if match is None:
            raise StripeApiError(400, f"Invalid parameter name: {key}", code="parameter_invalid")
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise StripeApiError(
                    400, f"Invalid parameter name: {key}", code="parameter_invalid"
                )
            node = child
        node[parts[-1]] = value
    return _lists_from_indexes(root)


def _lists_from_indexes(node: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            value = _lists_from_indexes(value)
            if value and all(k.isdigit() for k in value):
                value = [value[k] for k in sorted(value, key=int)]
        result[key] = value
    return result


def _fingerprint(method: str, path: str, pairs: Sequence[tuple[str, str]]) -> str:
    canonical = json.dumps([method, path, sorted(pairs)], separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --- Parameter helpers ------------------------------------------------------


def _reject_unknown(params: Mapping[str, Any], allowed: set[str]) -> None:
    for name in params:
        if name not in allowed:
            raise StripeApiError(
                400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )


def _required_str(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise StripeApiError(
            400, f"Missing required param: {name}.", code="parameter_missing", param=name
        )
    return value


def _optional_str(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise StripeApiError(400, f"Invalid string: {name}", code="parameter_invalid", param=name)
    return value


def _integer(params: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    value = params.get(name)
    if value is None:
        if required:
            raise StripeApiError(
                400, f"Missing required param: {name}.", code="parameter_missing", param=name
            )
        return None
    if not isinstance(value, str) or not re.fullmatch(r"\d{1,12}", value):
        raise StripeApiError(
            400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=name
        )
    return int(value)


def _boolean(params: Mapping[str, Any], name: str) -> bool | None:
    value = params.get(name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise StripeApiError(400, f"Invalid boolean: {value}", code="parameter_invalid", param=name)
    return bool(value == "true")


def _currency(params: Mapping[str, Any]) -> str:
    value = _required_str(params, "currency").lower()
    if not re.fullmatch(r"[a-z]{3}", value):
        raise StripeApiError(
            400, f"Invalid currency: {value}", code="parameter_invalid", param="currency"
        )
    return value


def _metadata(params: Mapping[str, Any]) -> dict[str, str]:
    value = params.get("metadata", {})
    if value == "":
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise StripeApiError(400, "Invalid metadata", code="parameter_invalid", param="metadata")
    return dict(value)


def _check_payment_method(payment_method: str) -> None:
    # The simulator keeps no PaymentMethods: any pm_ id stands for a card.
    if not payment_method.startswith("pm_"):
        raise StripeApiError(
            400,
            f"No such PaymentMethod: '{payment_method}'",
            code="resource_missing",
            param="payment_method",
        )


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


# --- State and endpoints ----------------------------------------------------

Handler = Callable[[dict[str, Any], dict[str, str], str], Awaitable[ApiResult]]


@dataclass(slots=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


@dataclass(slots=True)
class PaymentProviderSimulator:
    """The simulator's state and its ASGI app (:attr:`app`)."""

    config: SimulatorConfig = field(default_factory=SimulatorConfig)
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    transfers: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    request_log: list[dict[str, Any]] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)
    faults: FaultPlan = field(default_factory=FaultPlan)
    _stored: dict[tuple[str, str], _StoredResponse] = field(default_factory=dict)
    _in_flight: set[tuple[str, str]] = field(default_factory=set)
    _held_events: list[_Delivery] = field(default_factory=list)
    _queue: asyncio.Queue[_Delivery] | None = None
    _routes: list[_Route] = field(default_factory=list)
    app: Starlette = field(init=False)

    def __post_init__(self) -> None:
        self._routes = [
            _Route("POST", re.compile(r"/v1/payment_intents"), self._create_payment_intent),
            _Route(
                "POST",
                re.compile(r"/v1/payment_intents/(?P<id>[^/]+)/confirm"),
                self._confirm_payment_intent,
            ),
            _Route(
                "GET", re.compile(r"/v1/payment_intents/(?P<id>[^/]+)"), self._get_payment_intent
            ),
            _Route("GET", re.compile(r"/v1/charges/(?P<id>[^/]+)"), self._get_charge),
            _Route("POST", re.compile(r"/v1/refunds"), self._create_refund),
            _Route("GET", re.compile(r"/v1/refunds/(?P<id>[^/]+)"), self._get_refund),
            _Route("POST", re.compile(r"/v1/accounts"), self._create_account),
            _Route("GET", re.compile(r"/v1/accounts/(?P<id>[^/]+)"), self._get_account),
            _Route("POST", re.compile(r"/v1/transfers"), self._create_transfer),
            _Route("GET", re.compile(r"/v1/transfers/(?P<id>[^/]+)"), self._get_transfer),
        ]
        self.app = Starlette(
            routes=[
                Route("/v1/{rest:path}", self._handle_api, methods=["GET", "POST", "DELETE"]),
                Route("/__sim/faults", self._admin_faults, methods=["GET", "POST", "DELETE"]),
                Route("/__sim/stats", self._admin_stats, methods=["GET"]),
                Route("/__sim/requests", self._admin_requests, methods=["GET"]),
                Route("/__sim/events", self._admin_events, methods=["GET"]),
                Route("/__sim/webhooks/flush", self._admin_flush, methods=["POST"]),
                Route(
                    "/__sim/accounts/{account_id}/activate",
                    self._admin_activate_account,
                    methods=["POST"],
                ),
                Route("/__sim/reset", self._admin_reset, methods=["POST"]),
            ],
            lifespan=self._lifespan,
        )

    # --- Lifespan and webhook delivery ---

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self._queue = asyncio.Queue()
        async with httpx.AsyncClient(timeout=self.config.webhook_timeout_s) as client:
            worker = asyncio.create_task(self._deliver_forever(client))
            try:
                yield
            finally:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker

    async def _deliver_forever(self, client: httpx.AsyncClient) -> None:
        assert self._queue is not None
        while True:
            delivery = await self._queue.get()
            try:
                if self.faults.webhooks.delay_s:
                    await asyncio.sleep(self.faults.webhooks.delay_s)
                await self._deliver(client, delivery)
            finally:
                self._queue.task_done()

    async def _deliver(self, client: httpx.AsyncClient, delivery: _Delivery) -> None:
        url = self.config.webhook_url
        if url is None:
            self.stats["webhooks_skipped"] += 1
            return
        for attempt in range(1, self.config.webhook_max_attempts + 1):
            # Stripe signs each attempt with the time of that attempt.
            header = build_signature_header(
                delivery.body, self.config.webhook_secrets, int(time.time())
            )
            self.stats["webhook_attempts"] += 1
            try:
                response = await client.post(
                    url,
                    content=delivery.body,
                    headers={
                        "Content-Type": "application/json; charset=utf-8",
                        SIGNATURE_HEADER: header,
                        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                    },
                )
            except httpx.HTTPError as exc:
                log.warning(
                    "payment_simulator.webhook_failed",
                    event_id=delivery.event_id,
                    attempt=attempt,
                    error_type=type(exc).__name__,
                )
            else:
                if response.is_success:
                    self.stats["webhooks_delivered"] += 1
                    return
                log.warning(
                    "payment_simulator.webhook_rejected",
                    event_id=delivery.event_id,
                    attempt=attempt,
                    status=response.status_code,
                )
            if attempt < self.config.webhook_max_attempts:
                await asyncio.sleep(self.config.webhook_retry_delay_s * attempt)
        self.stats["webhooks_failed"] += 1

    def _emit(self, event_type: str, obj: dict[str, Any], *, account: str | None = None) -> None:
        event: dict[str, Any] = {
            "id": _new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": json.loads(json.dumps(obj))},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        if account is not None:
            event["account"] = account
        self.events.append(event)
        self.stats["events_created"] += 1

        # Stripe sends pretty-printed JSON; the signature covers these exact bytes.
        delivery = _Delivery(event_id=event["id"], body=json.dumps(event, indent=2).encode())
        copies = [delivery] * (1 + self.faults.webhooks.duplicates)
        window = self.faults.webhooks.reorder_window
        if window >= 2:
            self._held_events.extend(copies)
            if len(self._held_events) >= window:
                self._release_held()
        else:
            self._enqueue(copies)

    def _release_held(self) -> None:
        held = self._held_events
        self._held_events = []
        self._enqueue(list(reversed(held)))

    def _enqueue(self, deliveries: Sequence[_Delivery]) -> None:
        assert self._queue is not None, "the simulator app is not running"
        for delivery in deliveries:
            self._queue.put_nowait(delivery)

    # --- The API dispatcher: auth, idempotency, faults ---

    async def _handle_api(self, request: Request) -> Response:
        method = request.method
        path = request.url.path
        request_id = _new_id("req")
        idempotency_key = request.headers.get("idempotency-key") if method == "POST" else None
        entry: dict[str, Any] = {
            "method": method,
            "path": path,
            "idempotency_key": idempotency_key,
            "request_id": request_id,
        }
        self.request_log.append(entry)
        self.stats["requests"] += 1

        response = await self._dispatch(request, method, path, request_id, idempotency_key)
        entry["status"] = response.status_code
        entry["replayed"] = response.headers.get("idempotent-replayed") == "true"
        return response

    async def _dispatch(
        self,
        request: Request,
        method: str,
        path: str,
        request_id: str,
        idempotency_key: str | None,
    ) -> Response:
        headers = {"Request-Id": request_id, "Stripe-Version": API_VERSION}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        try:
            self._authenticate(request)
            route, path_params = self._match(method, path)
            raw = (await request.body()).decode("utf-8") if method == "POST" else ""
            pairs = parse_qsl(raw, keep_blank_values=True)
            params = decode_form(pairs)
        except StripeApiError as exc:
            return _json_response(exc.status, exc.body, headers)

        api_key = self.config.api_key
        server_error = self._take_fault("server_error", method, path)
        if server_error is not None:
            self.stats["faults_server_error"] += 1
            body = _error_body("api_error", "Simulated provider failure (injected fault).")
            return _json_response(server_error.status, body, headers)

        if idempotency_key is None:
            return await self._execute(route, params, path_params, method, path, headers)

        if len(idempotency_key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            error = _error_body(
                "invalid_request_error",
                f"Idempotency-Key is longer than {MAX_IDEMPOTENCY_KEY_LENGTH} characters.",
            )
            return _json_response(400, error, headers)

        slot = (api_key, idempotency_key)
        fingerprint = _fingerprint(method, path, pairs)
        self._expire_keys()
        stored = self._stored.get(slot)
        if stored is not None:
            if (stored.method, stored.path, stored.fingerprint) != (method, path, fingerprint):
                self.stats["idempotency_mismatches"] += 1
                error = _error_body(
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{idempotency_key}' "
                    "if you meant to execute a different request.",
                )
                return _json_response(400, error, headers)
            self.stats["idempotent_replays"] += 1
            replay_headers = {
                **headers,
                "Idempotent-Replayed": "true",
                "Original-Request": stored.request_id,
            }
            return Response(
                stored.body,
                status_code=stored.status,
                headers=replay_headers,
                media_type="application/json",
            )
        if slot in self._in_flight:
            self.stats["idempotency_conflicts"] += 1
            error = _error_body(
                "invalid_request_error",
                "There is currently another in-progress request using this Idempotent Key "
                f"(that probably means you submitted twice, and the other request is still "
                f"going through): {idempotency_key}. Please try again later.",
                code="idempotency_key_in_use",
            )
            return _json_response(409, error, headers)

        self._in_flight.add(slot)
        try:
            response = await self._execute(route, params, path_params, method, path, headers)
            # Stripe stores the result once the endpoint has run: successes and
            # card declines, not validation errors.
            if response.status_code < 300 or response.status_code == 402:
                self._stored[slot] = _StoredResponse(
                    method=method,
                    path=path,
                    fingerprint=fingerprint,
                    status=response.status_code,
                    body=bytes(response.body),
                    request_id=request_id,
                    stored_at=time.monotonic(),
                )
        finally:
            self._in_flight.discard(slot)

        timeout = self._take_fault("timeout", method, path)
        if timeout is not None:
            self.stats["faults_timeout"] += 1
            await asyncio.sleep(timeout.delay_s)
        return response

    async def _execute(
        self,
        route: _Route,
        params: dict[str, Any],
        path_params: dict[str, str],
        method: str,
        path: str,
        headers: dict[str, str],
    ) -> Response:
        latency = self._take_fault("latency", method, path)
        if latency is not None:
            self.stats["faults_latency"] += 1
            await asyncio.sleep(latency.delay_s)
        try:
            result = await route.handler(params, path_params, path)
        except StripeApiError as exc:
            return _json_response(exc.status, exc.body, headers)
        return _json_response(result.status, result.body, headers)

    def _authenticate(self, request: Request) -> None:
        # Stripe takes the key as a bearer token (the SDKs) or as the Basic
        # auth user name with an empty password (curl -u sk_...:).
        authorization = request.headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        token = credentials
        if scheme.lower() == "basic":
            try:
                token = base64.b64decode(credentials, validate=True).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                token = ""
        elif scheme.lower() != "bearer":
            token = ""
        if not token or token != self.config.api_key:
            raise StripeApiError(
                401,
                "Invalid API Key provided. Use the simulator's configured secret key.",
            )

    def _match(self, method: str, path: str) -> tuple[_Route, dict[str, str]]:
        for route in self._routes:
            if route.method != method:
                continue
            match = route.pattern.fullmatch(path)
            if match is not None:
                return route, match.groupdict()
        raise StripeApiError(404, f"Unrecognized request URL ({method}: {path}).")

    def _take_fault(self, kind: str, method: str, path: str) -> ApiFault | None:
        for fault in self.faults.api:
            if fault.kind == kind and fault.matches(method, path):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.api.remove(fault)
                return fault
        return None

    def _expire_keys(self) -> None:
        cutoff = time.monotonic() - self.config.idempotency_ttl_s
        for slot in [s for s, stored in self._stored.items() if stored.stored_at < cutoff]:
            del self._stored[slot]

    # --- PaymentIntents ---

    async def _create_payment_intent(
        self, params: dict[str, Any], _path_params: dict[str, str], path: str
    ) -> ApiResult:
        _reject_unknown(
            params,
            {
                "amount",
                "currency",
                "customer",
                "payment_method",
                "confirm",
                "off_session",
                "transfer_group",
                "description",
                "metadata",
                "automatic_payment_methods",
                "payment_method_types",
                "return_url",
                "capture_method",
                "expand",
            },
        )
        amount = _integer(params, "amount", required=True)
        assert amount is not None
        currency = _currency(params)
        minimum = MIN_CHARGE_CENTS.get(currency, 1)
        if amount < minimum:
            raise StripeApiError(
                400,
                f"Amount must be at least {minimum} cents {currency}.",
                code="amount_too_small",
                param="amount",
            )
        if params.get("capture_method") not in (None, "automatic"):
            raise StripeApiError(
                400,
                "The simulator supports only capture_method=automatic.",
                code="parameter_invalid",
                param="capture_method",
            )
        confirm = _boolean(params, "confirm") or False
        payment_method = _optional_str(params, "payment_method")
        if confirm:
            self._check_confirmable(params, payment_method)

        intent_id = _new_id("pi")
        intent: dict[str, Any] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_received": 0,
            "automatic_payment_methods": None,
            "capture_method": "automatic",
            "client_secret": f"{intent_id}_secret_{uuid.uuid4().hex[:24]}",
            "confirmation_method": "automatic",
            "created": int(time.time()),
            "currency": currency,
            "customer": _optional_str(params, "customer"),
            "description": _optional_str(params, "description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": _metadata(params),
            "payment_method": payment_method,
            "status": ("requires_confirmation" if payment_method else "requires_payment_method"),
            "transfer_group": _optional_str(params, "transfer_group"),
        }
        self.payment_intents[intent_id] = intent
        self.stats["payment_intents_created"] += 1
        self._emit("payment_intent.created", intent)

        if confirm:
            return self._charge(intent, path)
        return ApiResult(200, intent)

    async def _confirm_payment_intent(
        self, params: dict[str, Any], path_params: dict[str, str], path: str
    ) -> ApiResult:
        _reject_unknown(params, {"payment_method", "off_session", "return_url", "expand"})
        intent = self._find(self.payment_intents, path_params["id"], "payment_intent")
        if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise StripeApiError(
                400,
                "You cannot confirm this PaymentIntent because it has a status of "
                f"{intent['status']}.",
                code="payment_intent_unexpected_state",
            )
        payment_method = _optional_str(params, "payment_method") or intent["payment_method"]
        if payment_method is None:
            raise StripeApiError(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
                param="payment_method",
            )
        _check_payment_method(payment_method)
        intent["payment_method"] = payment_method
        return self._charge(intent, path)

    def _check_confirmable(self, params: Mapping[str, Any], payment_method: str | None) -> None:
        if payment_method is None:
            raise StripeApiError(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="parameter_missing",
                param="payment_method",
            )
        _check_payment_method(payment_method)
        # Stripe rejects a server-side confirmation that could need a redirect
        # unless redirects are turned off or a return_url is given.
        automatic = params.get("automatic_payment_methods")
        redirects_off = isinstance(automatic, dict) and automatic.get("allow_redirects") == "never"
        if not (redirects_off or params.get("return_url") or params.get("payment_method_types")):
            raise StripeApiError(
                400,
                "This PaymentIntent is configured to accept payment methods that may redirect; "
                "provide a return_url, or set automatic_payment_methods[allow_redirects] to never.",
                code="parameter_missing",
                param="return_url",
            )

    def _charge(self, intent: dict[str, Any], path: str) -> ApiResult:
        """Confirm ``intent``: create its charge and succeed, or decline."""
        self.stats["payment_intents_confirmed"] += 1
        payment_method = str(intent["payment_method"])

        decline_code: str | None = TEST_DECLINES.get(payment_method)
        advice_code: str | None = None
        fault = self._take_fault("decline", "POST", path)
        if fault is not None:
            self.stats["faults_decline"] += 1
            decline_code = fault.decline_code
            advice_code = fault.advice_code

        charge_id = _new_id("ch")
        charge: dict[str, Any] = {
            "id": charge_id,
            "object": "charge",
            "amount": intent["amount"],
            "amount_refunded": 0,
            "currency": intent["currency"],
            "customer": intent["customer"],
            "payment_intent": intent["id"],
            "payment_method": payment_method,
            "status": "succeeded" if decline_code is None else "failed",
            "paid": decline_code is None,
            "refunded": False,
            "transfer_group": intent["transfer_group"],
            "created": int(time.time()),
            "livemode": False,
        }
        self.charges[charge_id] = charge
        intent["latest_charge"] = charge_id

        if decline_code is None:
            intent["status"] = "succeeded"
            intent["amount_received"] = intent["amount"]
            intent["last_payment_error"] = None
            self.stats["charges_succeeded"] += 1
            self._emit("charge.succeeded", charge)
            self._emit("payment_intent.succeeded", intent)
            return ApiResult(200, intent)

        # Stripe reports an expired card under the error code, not a decline code.
        code = "expired_card" if decline_code == "expired_card" else "card_declined"
        error: dict[str, Any] = {
            "type": "card_error",
            "code": code,
            "message": "Your card was declined.",
            "charge": charge_id,
            "payment_method": {"id": payment_method, "object": "payment_method"},
        }
        if code == "card_declined":
            error["decline_code"] = decline_code
        if advice_code is not None:
            error["advice_code"] = advice_code
        charge["failure_code"] = code
        charge["failure_message"] = error["message"]
        intent["status"] = "requires_payment_method"
        intent["last_payment_error"] = error
        self.stats["charges_declined"] += 1
        self._emit("charge.failed", charge)
        self._emit("payment_intent.payment_failed", intent)
        return ApiResult(402, {"error": {**error, "payment_intent": intent}})

    async def _get_payment_intent(
        self, _params: dict[str, Any], path_params: dict[str, str], _path: str
    ) -> ApiResult:
        return ApiResult(200, self._find(self.payment_intents, path_params["id"], "payment_intent"))

    async def _get_charge(
        self, _params: dict[str, Any], path_params: dict[str, str], _path: str
    ) -> ApiResult:
        return ApiResult(200, self._find(self.charges, path_params["id"], "charge"))

    # --- Refunds ---

    async def _create_refund(
        self, params: dict[str, Any], _path_params: dict[str, str], _path: str
    ) -> ApiResult:
        _reject_unknown(
            params, {"payment_intent", "charge", "amount", "reason", "metadata", "expand"}
        )
        intent_id = _optional_str(params, "payment_intent")
        charge_id = _optional_str(params, "charge")
        if intent_id is not None:
            intent = self._find(self.payment_intents, intent_id, "payment_intent")
            charge_id = intent["latest_charge"]
        if charge_id is None:
            raise StripeApiError(
                400,
                "One of the following params should be provided for this request: "
                "payment_intent or charge.",
                code="parameter_missing",
            )
        charge = self._find(self.charges, charge_id, "charge")
        if charge["status"] != "succeeded":
            raise StripeApiError(
                400, f"Charge {charge_id} has not succeeded and cannot be refunded."
            )
        remaining = int(charge["amount"]) - int(charge["amount_refunded"])
        if remaining == 0:
            raise StripeApiError(
                400,
                f"Charge {charge_id} has already been refunded.",
                code="charge_already_refunded",
            )
        amount = _integer(params, "amount", required=False)
        if amount is None:
            amount = remaining
        if amount < 1 or amount > remaining:
            raise StripeApiError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                f"({remaining}).",
                code="amount_too_large",
                param="amount",
            )
        reason = _optional_str(params, "reason")
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
            raise StripeApiError(
                400, f"Invalid reason: {reason}", code="parameter_invalid", param="reason"
            )

        refund_id = _new_id("re")
        refund: dict[str, Any] = {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "charge": charge_id,
            "created": int(time.time()),
            "currency": charge["currency"],
            "metadata": _metadata(params),
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "status": "succeeded",
        }
        self.refunds[refund_id] = refund
        charge["amount_refunded"] = int(charge["amount_refunded"]) + amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self.stats["refunds_created"] += 1
        self._emit("refund.created", refund)
        self._emit("charge.refunded", charge)
        return ApiResult(200, refund)

    async def _get_refund(
        self, _params: dict[str, Any], path_params: dict[str, str], _path: str
    ) -> ApiResult:
        return ApiResult(200, self._find(self.refunds, path_params["id"], "refund"))

    # --- Connect accounts ---

    async def _create_account(
        self, params: dict[str, Any], _path_params: dict[str, str], _path: str
    ) -> ApiResult:
        _reject_unknown(
            params,
            {"type", "country", "email", "business_type", "capabilities", "metadata", "expand"},
        )
        account_type = _optional_str(params, "type") or "express"
        if account_type not in ("express", "custom", "standard"):
            raise StripeApiError(
                400, f"Invalid type: {account_type}", code="parameter_invalid", param="type"
            )
        active = self.config.accounts_active_on_create
        account_id = _new_id("acct")
        account: dict[str, Any] = {
            "id": account_id,
            "object": "account",
            "business_type": _optional_str(params, "business_type"),
            "capabilities": {"transfers": "active" if active else "inactive"},
            "charges_enabled": active,
            "country": _optional_str(params, "country") or "US",
            "created": int(time.time()),
            "details_submitted": active,
            "email": _optional_str(params, "email"),
            "metadata": _metadata(params),
            "payouts_enabled": active,
            "type": account_type,
        }
        self.accounts[account_id] = account
        self.stats["accounts_created"] += 1
        return ApiResult(200, account)

    async def _get_account(
        self, _params: dict[str, Any], path_params: dict[str, str], _path: str
    ) -> ApiResult:
        return ApiResult(200, self._find(self.accounts, path_params["id"], "account"))

    # --- Transfers ---

    async def _create_transfer(
        self, params: dict[str, Any], _path_params: dict[str, str], _path: str
    ) -> ApiResult:
        _reject_unknown(
            params,
            {
                "amount",
                "currency",
                "destination",
                "transfer_group",
                "source_transaction",
                "description",
                "metadata",
                "expand",
            },
        )
        amount = _integer(params, "amount", required=True)
        assert amount is not None
        currency = _currency(params)
        destination = _required_str(params, "destination")
        account = self.accounts.get(destination)
        if account is None:
            raise StripeApiError(
                400,
                f"No such destination: '{destination}'",
                code="resource_missing",
                param="destination",
            )
        if account["capabilities"].get("transfers") != "active":
            raise StripeApiError(
                400,
                "Your destination account needs to have at least one of the following "
                "capabilities enabled: transfers, crypto_transfers, legacy_payments",
                code="insufficient_capabilities_for_transfer",
                param="destination",
            )

        source_id = _optional_str(params, "source_transaction")
        if source_id is not None:
            source = self.charges.get(source_id)
            if source is None:
                raise StripeApiError(
                    400,
                    f"No such charge: '{source_id}'",
                    code="resource_missing",
                    param="source_transaction",
                )
            if source["status"] != "succeeded" or source["currency"] != currency:
                raise StripeApiError(
                    400,
                    f"Charge {source_id} has not succeeded in {currency} and cannot fund "
                    "a transfer.",
                    code="parameter_invalid",
                    param="source_transaction",
                )
            already = sum(
                int(t["amount"])
                for t in self.transfers.values()
                if t["source_transaction"] == source_id
            )
            available = int(source["amount"]) - int(source["amount_refunded"]) - already
            if amount > available:
                raise StripeApiError(
                    400,
                    f"The transfer amount ({amount}) exceeds the {available} cents left in "
                    f"source transaction {source_id}.",
                    code="balance_insufficient",
                    param="amount",
                )

        transfer_id = _new_id("tr")
        transfer: dict[str, Any] = {
            "id": transfer_id,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "created": int(time.time()),
            "currency": currency,
            "description": _optional_str(params, "description"),
            "destination": destination,
            "destination_payment": _new_id("py"),
            "livemode": False,
            "metadata": _metadata(params),
            "reversed": False,
            "source_transaction": source_id,
            "transfer_group": _optional_str(params, "transfer_group"),
        }
        self.transfers[transfer_id] = transfer
        self.stats["transfers_created"] += 1
        self._emit("transfer.created", transfer)
        return ApiResult(200, transfer)

    async def _get_transfer(
        self, _params: dict[str, Any], path_params: dict[str, str], _path: str
    ) -> ApiResult:
        return ApiResult(200, self._find(self.transfers, path_params["id"], "transfer"))

    @staticmethod
    def _find(store: dict[str, dict[str, Any]], object_id: str, kind: str) -> dict[str, Any]:
        obj = store.get(object_id)
        if obj is None:
            raise StripeApiError(
                404, f"No such {kind}: '{object_id}'", code="resource_missing", param="id"
            )
        return obj

    # --- Admin endpoints ---

    async def _admin_faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                self.faults = FaultPlan.model_validate_json(await request.body())
            except ValidationError as exc:
                return JSONResponse({"detail": exc.errors(include_url=False)}, status_code=422)
        elif request.method == "DELETE":
            self.faults = FaultPlan()
        return JSONResponse(self.faults.model_dump())

    async def _admin_stats(self, _request: Request) -> Response:
        pending = (self._queue.qsize() if self._queue else 0) + len(self._held_events)
        return JSONResponse({**self.stats, "webhooks_pending": pending})

    async def _admin_requests(self, _request: Request) -> Response:
        return JSONResponse({"data": self.request_log})

    async def _admin_events(self, request: Request) -> Response:
        event_type = request.query_params.get("type")
        events = [e for e in self.events if event_type is None or e["type"] == event_type]
        return JSONResponse({"data": events})

    async def _admin_flush(self, _request: Request) -> Response:
        count = len(self._held_events)
        self._release_held()
        return JSONResponse({"released": count})

    async def _admin_activate_account(self, request: Request) -> Response:
        account = self.accounts.get(request.path_params["account_id"])
        if account is None:
            return JSONResponse({"detail": "no such account"}, status_code=404)
        account.update(
            charges_enabled=True,
            payouts_enabled=True,
            details_submitted=True,
            capabilities={"transfers": "active"},
        )
        self._emit("account.updated", account, account=account["id"])
        return JSONResponse(account)

    async def _admin_reset(self, _request: Request) -> Response:
        for store in (
            self.payment_intents,
            self.charges,
            self.refunds,
            self.accounts,
            self.transfers,
            self._stored,
        ):
            store.clear()
        self.events.clear()
        self.request_log.clear()
        self.stats.clear()
        self._held_events.clear()
        self.faults = FaultPlan()
        return JSONResponse({"reset": True})


def _json_response(status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> Response:
    return Response(
        json.dumps(body).encode(),
        status_code=status,
        headers=dict(headers),
        media_type="application/json",
    )


# --- Running it -------------------------------------------------------------


@contextlib.contextmanager
def run_payment_provider(
    config: SimulatorConfig | None = None,
) -> Iterator[tuple[PaymentProviderSimulator, ServerThread]]:
    """Serve a fresh simulator on 127.0.0.1 (a free port) in a thread for the block.

    The simulator's state (``stats``, ``events``...) can be read directly, or
    over HTTP at ``server.base_url``.
    """
    simulator = PaymentProviderSimulator(config or SimulatorConfig())
    with ServerThread(simulator.app) as server:
        yield simulator, server


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the simulator in the foreground (development set-up)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=12111, help="TCP port to listen on")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="secret key clients must send")
    parser.add_argument("--webhook-url", default=None, help="platform URL that receives events")
    parser.add_argument(
        "--webhook-secret",
        action="append",
        help="signing secret (whsec_...); repeat to sign with several",
    )
    parser.add_argument(
        "--accounts-active",
        action="store_true",
        help="create connected accounts ready for transfers (skip onboarding)",
    )
    args = parser.parse_args(argv)
    config = SimulatorConfig(
        api_key=args.api_key,
        webhook_url=args.webhook_url,
        webhook_secrets=tuple(args.webhook_secret or (DEFAULT_WEBHOOK_SECRET,)),
        accounts_active_on_create=args.accounts_active,
    )
    uvicorn.run(PaymentProviderSimulator(config).app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()

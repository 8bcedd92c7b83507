"""Fixtures for observability tests: captured log lines (JSON and console), in-memory
spans, metric reads, and a client that sends secrets through the app."""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from pydantic import SecretStr

from superior_one.app import create_app
from superior_one.config import Settings
from superior_one.integrations.fmcsa import FmcsaClient, FmcsaError
from superior_one.observability.logging import configure_logging
from superior_one.observability.metrics import flush_tallies
from superior_one.observability.tracing import setup_tracing, shutdown_tracing
from superior_one.resources import Resources
from superior_one.simulators.fmcsa import Fault, SimulatorServer
from superior_one.simulators.payment_provider import DEFAULT_API_KEY, DEFAULT_WEBHOOK_SECRET
from superior_one.simulators.server import ServerThread
from tests.factories import DEFAULT_PASSWORD, create_organization, create_user

# The payments tests' fixtures: a fresh payment provider simulator per test.
from tests.payments.conftest import payment_simulator, simulator  # noqa: F401

CARD_NUMBER = "4242 4242 4242 4242"
CARD_DIGITS = CARD_NUMBER.replace(" ", "")
WRONG_PASSWORD = "wrong-password-Zq81"
FMCSA_WEB_KEY = "obs-fmcsa-web-key-7Rk2"
STRIPE_TIMEOUT_S = 0.5


class CapturedLogs:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.text.splitlines() if line.startswith("{")]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == name]


@pytest.fixture
def captured_logs() -> Iterator[CapturedLogs]:
    """Every log line, rendered as in production (JSON), from the moment it is requested.

    Request it after the app fixture: the app factory configures logging again.
    """
    captured = CapturedLogs()
    configure_logging(level="INFO", json=True, stream=captured.stream)
    try:
        yield captured
    finally:
        configure_logging(level="INFO")


@pytest.fixture
def console_logs() -> Iterator[io.StringIO]:
    """Every log line as the development console renderer prints it.

    Request it after the app fixture: the app factory configures logging again.
    """
    stream = io.StringIO()
    configure_logging(level="INFO", json=False, stream=stream)
    try:
        yield stream
    finally:
        configure_logging(level="INFO")


@pytest.fixture
def span_exporter() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test, spans kept in memory."""
    exporter = InMemorySpanExporter()
    tracing = setup_tracing(
        Settings(otel_sample_ratio=1.0), service_name="test", exporter=exporter, set_global=False
    )
    assert tracing is not None
    try:
        yield exporter
    finally:
        shutdown_tracing()


@pytest.fixture
async def traced_app(
    settings: Settings, span_exporter: InMemorySpanExporter
) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        await application.state.principal_cache.wait_until_subscribed(timeout_s=2.0)
        yield application


@pytest.fixture
async def traced_client(traced_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=traced_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


MetricReader = Callable[..., float]


@pytest.fixture
def metric() -> MetricReader:
    """``metric("so_http_requests_total", route="/me")``: the sample's value, 0 if absent."""

    def read(name: str, **labels: str) -> float:
        flush_tallies()
        value = REGISTRY.get_sample_value(name, labels)
        return 0.0 if value is None else value

    return read


def aimed_at_payment_provider(settings: Settings, server: ServerThread) -> Settings:
    """Return ``settings`` with the payment provider simulator on ``server`` as Stripe.

    Its timeout is short, for tests that make the simulator hold a response.
    """
    return settings.model_copy(
        update={
            "stripe_secret_key": SecretStr(DEFAULT_API_KEY),
            "stripe_api_base": server.base_url,
            "stripe_timeout_s": STRIPE_TIMEOUT_S,
            "stripe_webhook_secret": SecretStr(DEFAULT_WEBHOOK_SECRET),
        }
    )


@pytest.fixture
def fmcsa_simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(web_key=FMCSA_WEB_KEY) as server:
        yield server


@pytest.fixture
def secret_routes(traced_app: FastAPI) -> FastAPI:
    @traced_app.post("/test/echo-fail")
    async def echo_fail(payload: dict[str, Any]) -> None:
        # An unexpected error whose message quotes what the client sent.
        raise RuntimeError(f"could not handle {payload} password={payload.get('password')}")

    return traced_app


@pytest.fixture
async def secret_client(secret_routes: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=secret_routes, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def send_secrets(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, fmcsa: SimulatorServer
) -> list[str]:
    """Send every kind of secret through the app and the FMCSA client; return them.

    Passwords at login, the tokens (header, query and refresh body), a card number
    in login, charge and failing bodies, the FMCSA webKey in a query and a body,
    and FMCSA calls (one failed) made with the key.
    """
    resources: Resources = app.state.resources
    organization = await create_organization(resources.sessionmaker)
    user = await create_user(resources.sessionmaker, settings, organization)

    login = await client.post(
        "/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
    )
    tokens = login.json()
    bearer = {"Authorization": f"Bearer {tokens['accessToken']}"}
    await client.get("/me", headers=bearer)
    await client.get("/me", params={"access_token": tokens["accessToken"]})
    refreshed = await client.post("/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    await client.post("/auth/login", json={"email": user.email, "password": WRONG_PASSWORD})
    await client.post(
        "/auth/login",
        json={"email": user.email, "password": DEFAULT_PASSWORD, "cardNumber": CARD_NUMBER},
    )
    await client.post(
        f"/invoices/{uuid.uuid4()}/charge",
        json={"amountCents": 125000, "cardNumber": CARD_NUMBER, "cvc": "123"},
        headers={**bearer, "Idempotency-Key": str(uuid.uuid4())},
    )
    await client.get("/carriers/me", params={"webKey": FMCSA_WEB_KEY}, headers=bearer)
    await client.post(
        "/test/echo-fail",
        json={"cardNumber": CARD_NUMBER, "password": WRONG_PASSWORD, "webKey": FMCSA_WEB_KEY},
        headers=bearer,
    )
    await call_fmcsa(settings, resources, fmcsa)
    return [
        DEFAULT_PASSWORD,
        WRONG_PASSWORD,
        tokens["accessToken"],
        tokens["refreshToken"],
        refreshed.json()["refreshToken"],
        CARD_NUMBER,
        CARD_DIGITS,
        FMCSA_WEB_KEY,
        settings.jwt_secret.get_secret_value(),
    ]


async def call_fmcsa(settings: Settings, resources: Resources, fmcsa: SimulatorServer) -> None:
    """Look up DOT 3000004 through the simulator, then DOT 3000005 while it returns 502."""
    aimed = settings.model_copy(
        update={
            "fmcsa_base_url": fmcsa.base_url,
            "fmcsa_web_key": SecretStr(FMCSA_WEB_KEY),
            "fmcsa_call_budget": "1000/minute",
            "fmcsa_budget_max_wait_s": 0.0,
            "fmcsa_retry_attempts": 1,
        }
    )
    async with httpx.AsyncClient() as http:
        client = FmcsaClient.create(
            aimed, http=http, redis=resources.redis, limits_storage=resources.limits_storage
        )
        await client.carrier(3000004)
        fmcsa.state.add_fault(Fault(kind="status", status=502, count=1))
        with contextlib.suppress(FmcsaError):
            await client.carrier(3000005)

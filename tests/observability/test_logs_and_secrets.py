"""Log lines carry request and trace ids; no credential or card number reaches logs,
metrics or Sentry, whatever a request sends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import SecretStr
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from superior_one.config import Settings
from superior_one.observability.logging import scrub_text
from superior_one.observability.sentry import setup_sentry, stop_sentry
from superior_one.resources import Resources
from tests.factories import DEFAULT_PASSWORD, auth_headers, create_organization, create_user
from tests.observability.conftest import CapturedLogs

CARD_NUMBER = "4242 4242 4242 4242"
CARD_DIGITS = CARD_NUMBER.replace(" ", "")
WRONG_PASSWORD = "wrong-password-Zq81"


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


async def _send_secrets(client: httpx.AsyncClient, app: FastAPI, settings: Settings) -> list[str]:
    """Log in, use the tokens, send a card number; return every secret sent."""
    resources: Resources = app.state.resources
    organization = await create_organization(resources.sessionmaker)
    user = await create_user(resources.sessionmaker, settings, organization)

    login = await client.post(
        "/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
    )
    tokens = login.json()
    await client.get("/me", headers={"Authorization": f"Bearer {tokens['accessToken']}"})
    await client.post("/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    await client.post("/auth/login", json={"email": user.email, "password": WRONG_PASSWORD})
    await client.post(
        "/auth/login",
        json={"email": user.email, "password": DEFAULT_PASSWORD, "cardNumber": CARD_NUMBER},
    )
    await client.post(
        "/test/echo-fail",
        json={"cardNumber": CARD_NUMBER, "password": WRONG_PASSWORD},
        headers={"Authorization": f"Bearer {tokens['accessToken']}"},
    )
    return [
        DEFAULT_PASSWORD,
        WRONG_PASSWORD,
        tokens["accessToken"],
        tokens["refreshToken"],
        CARD_NUMBER,
        CARD_DIGITS,
        settings.jwt_secret.get_secret_value(),
    ]


class TestIds:
    async def test_logs_access_line_has_request_id(
        self,
        traced_client: httpx.AsyncClient,
        traced_app: FastAPI,
        captured_logs: CapturedLogs,
    ) -> None:
        response = await traced_client.get("/health/live", headers={"X-Request-ID": "req-obs-0001"})

        [line] = captured_logs.events("http.request")
        assert response.headers["x-request-id"] == line["request_id"] == "req-obs-0001"

    async def test_logs_access_line_has_trace_id(
        self,
        traced_client: httpx.AsyncClient,
        traced_app: FastAPI,
        settings: Settings,
        captured_logs: CapturedLogs,
        span_exporter: InMemorySpanExporter,
    ) -> None:
        resources: Resources = traced_app.state.resources
        organization = await create_organization(resources.sessionmaker)
        user = await create_user(resources.sessionmaker, settings, organization)
        span_exporter.clear()

        await traced_client.get("/me", headers=auth_headers(settings, user))

        [server] = [s for s in span_exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
        [line] = captured_logs.events("http.request")
        assert line["trace_id"] == format(server.context.trace_id, "032x")

    async def test_logs_unexpected_error_logged_once_with_ids(
        self, secret_client: httpx.AsyncClient, captured_logs: CapturedLogs
    ) -> None:
        response = await secret_client.post("/test/echo-fail", json={"a": 1})

        with_traceback = [line for line in captured_logs.lines() if "exception" in line]
        assert response.status_code == 500
        assert len(with_traceback) == 1
        assert with_traceback[0]["request_id"] == response.json()["requestId"]
        assert len(with_traceback[0]["trace_id"]) == 32

    async def test_logs_error_class_and_code_on_access_line(
        self, traced_client: httpx.AsyncClient, captured_logs: CapturedLogs
    ) -> None:
        await traced_client.get("/me")

        [line] = captured_logs.events("http.request")
        assert (line["error_class"], line["error_code"]) == ("client", "token_missing")

    # NOTE: job ids on log lines are bound by the jobs package's runner; its tests
    # check them once it lands.


class TestNoSecrets:
    async def test_logs_contain_no_secret_sent(
        self,
        secret_client: httpx.AsyncClient,
        secret_routes: FastAPI,
        settings: Settings,
        captured_logs: CapturedLogs,
    ) -> None:
        secrets = await _send_secrets(secret_client, secret_routes, settings)

        text = captured_logs.text
        assert captured_logs.events("http.request")  # the capture saw the requests
        assert [s for s in secrets if s in text] == []

    async def test_metrics_contain_no_secret_sent(
        self, secret_client: httpx.AsyncClient, secret_routes: FastAPI, settings: Settings
    ) -> None:
        secrets = await _send_secrets(secret_client, secret_routes, settings)

        exposition = (await secret_client.get("/metrics")).text
        assert "so_http_requests_total" in exposition
        assert [s for s in secrets if s in exposition] == []


class _CapturingTransport(Transport):
    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def payload(self) -> str:
        return "\n".join(
            json.dumps(item.payload.json)
            for e in self.envelopes
            for item in e.items
            if item.payload.json is not None
        )


@pytest.fixture
def sentry_transport(settings: Settings) -> Iterator[_CapturingTransport]:
    transport = _CapturingTransport()
    configured = settings.model_copy(
        update={"sentry_dsn": SecretStr("http://public@127.0.0.1:9/1")}
    )
    assert setup_sentry(configured, service_name="test", transport=transport)
    try:
        yield transport
    finally:
        stop_sentry()


class TestSentry:
    async def test_sentry_event_carries_no_secret(
        self,
        sentry_transport: _CapturingTransport,
        secret_client: httpx.AsyncClient,
        secret_routes: FastAPI,
        settings: Settings,
    ) -> None:
        secrets = await _send_secrets(secret_client, secret_routes, settings)
        import sentry_sdk

        sentry_sdk.flush()

        payload = sentry_transport.payload()
        assert "RuntimeError" in payload
        assert [s for s in secrets if s in payload] == []

    def test_sentry_off_without_dsn(self, settings: Settings) -> None:
        assert setup_sentry(settings, service_name="test") is False


class TestScrubText:
    @pytest.mark.parametrize(
        "text",
        [
            "Authorization: Bearer abcdefghijklmnop",
            "card 4242-4242-4242-4242 declined",
            "password=hunter2hunter2",
            '{"refresh_token": "r3fr3sh-t0k3n-value"}',
            "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVl",
        ],
    )
    def test_scrub_text_removes_secret(self, text: str) -> None:
        assert "[redacted]" in scrub_text(text)

    def test_scrub_text_keeps_non_card_number(self) -> None:
        assert scrub_text("load 1234567890123 moved") == "load 1234567890123 moved"

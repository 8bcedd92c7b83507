"""No secret reaches an exported span: the FMCSA webKey in client URLs, Stripe's key and
card data around a charge, tokens and passwords around Redis and auth, exception text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from superior_one.config import Settings
from superior_one.observability.span_redaction import ScrubbingSpanExporter
from superior_one.observability.tracing import current_tracing
from superior_one.resources import Resources
from superior_one.simulators.fmcsa import SimulatorServer
from superior_one.simulators.payment_provider import (
    DEFAULT_API_KEY,
    PaymentProviderSimulator,
)
from superior_one.simulators.server import ServerThread
from tests.observability.conftest import (
    CARD_DIGITS,
    CARD_NUMBER,
    FMCSA_WEB_KEY,
    aimed_at_payment_provider,
    call_fmcsa,
    send_secrets,
)
from tests.payments.factories import (
    AMOUNT_CENTS,
    charge,
    completed_load,
    create_parties,
    issue_invoice,
    save_billing_profile,
)

STRIPE_KEY = DEFAULT_API_KEY
URL_ATTRIBUTES = ("url.full", "http.url")


@pytest.fixture
def settings(
    settings: Settings, payment_simulator: tuple[PaymentProviderSimulator, ServerThread]
) -> Settings:
    return aimed_at_payment_provider(settings, payment_simulator[1])


def _exported_text(spans: Sequence[ReadableSpan]) -> str:
    """Return every name and attribute value of ``spans``, events and links included."""

    def attributes(values: Any) -> dict[str, Any]:
        return dict(values or {})

    dumped = [
        {
            "name": span.name,
            "attributes": attributes(span.attributes),
            "events": [(e.name, attributes(e.attributes)) for e in span.events],
            "links": [attributes(link.attributes) for link in span.links],
        }
        for span in spans
    ]
    return orjson.dumps(dumped, default=str).decode()


def _client_urls(spans: Sequence[ReadableSpan]) -> list[str]:
    return [
        str(span.attributes[name])
        for span in spans
        if span.kind == SpanKind.CLIENT and span.attributes
        for name in URL_ATTRIBUTES
        if name in span.attributes
    ]


class TestFmcsaSpans:
    async def test_fmcsa_span_hides_web_key(
        self,
        settings: Settings,
        resources: Resources,
        fmcsa_simulator: SimulatorServer,
        span_exporter: InMemorySpanExporter,
    ) -> None:
        await call_fmcsa(settings, resources, fmcsa_simulator)

        assert FMCSA_WEB_KEY not in _exported_text(span_exporter.get_finished_spans())

    async def test_fmcsa_span_keeps_redacted_url(
        self,
        settings: Settings,
        resources: Resources,
        fmcsa_simulator: SimulatorServer,
        span_exporter: InMemorySpanExporter,
    ) -> None:
        await call_fmcsa(settings, resources, fmcsa_simulator)

        assert [
            url
            for url in _client_urls(span_exporter.get_finished_spans())
            if "/carriers/3000004" in url
        ] == [f"{fmcsa_simulator.base_url}/carriers/3000004?webKey=[redacted]"]


async def _charge_invoice(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, *, card_first: bool = False
) -> httpx.Response:
    """Charge a fresh invoice; with ``card_first``, first try a body carrying card data."""
    resources: Resources = app.state.resources
    parties = await create_parties(resources, settings)
    await save_billing_profile(client, parties.shipper)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))
    if card_first:
        card_body = {"amountCents": AMOUNT_CENTS, "cardNumber": CARD_NUMBER, "cvc": "123"}
        await charge(client, invoice.id, parties.shipper, body=card_body)
    return await charge(client, invoice.id, parties.shipper)


class TestStripeSpans:
    async def test_charge_spans_hide_key_and_card(
        self,
        traced_client: httpx.AsyncClient,
        traced_app: FastAPI,
        settings: Settings,
        span_exporter: InMemorySpanExporter,
    ) -> None:
        paid = await _charge_invoice(traced_client, traced_app, settings, card_first=True)
        assert paid.status_code == 200, paid.text

        text = _exported_text(span_exporter.get_finished_spans())

        assert [
            s for s in (STRIPE_KEY, CARD_NUMBER, CARD_DIGITS, "pm_card_visa") if s in text
        ] == []

    async def test_charge_span_records_provider_url(
        self,
        traced_client: httpx.AsyncClient,
        traced_app: FastAPI,
        settings: Settings,
        span_exporter: InMemorySpanExporter,
    ) -> None:
        await _charge_invoice(traced_client, traced_app, settings)

        urls = _client_urls(span_exporter.get_finished_spans())
        assert f"{settings.stripe_api_base}/v1/payment_intents" in urls


class TestRequestSpans:
    async def test_sent_secrets_absent_from_spans(
        self,
        secret_client: httpx.AsyncClient,
        secret_routes: FastAPI,
        settings: Settings,
        fmcsa_simulator: SimulatorServer,
        span_exporter: InMemorySpanExporter,
    ) -> None:
        secrets = await send_secrets(secret_client, secret_routes, settings, fmcsa_simulator)

        text = _exported_text(span_exporter.get_finished_spans())

        assert [s for s in secrets if s in text] == []

    async def test_redis_statements_hide_values(
        self,
        secret_client: httpx.AsyncClient,
        secret_routes: FastAPI,
        settings: Settings,
        fmcsa_simulator: SimulatorServer,
        span_exporter: InMemorySpanExporter,
    ) -> None:
        await send_secrets(secret_client, secret_routes, settings, fmcsa_simulator)

        statements = {
            str(span.attributes.get("db.statement", span.attributes.get("db.query.text")))
            for span in span_exporter.get_finished_spans()
            if span.attributes
            and span.attributes.get("db.system", span.attributes.get("db.system.name")) == "redis"
        }
        words = {word for statement in statements for word in statement.split()}
        assert statements
        # The instrumentation keeps each command's name and replaces its arguments by "?".
        assert {word for word in words if word != "?" and not word.isupper()} == set()


class TestExceptionEvents:
    def test_exception_event_is_scrubbed(self, span_exporter: InMemorySpanExporter) -> None:
        tracing = current_tracing()
        assert tracing is not None

        with (
            pytest.raises(RuntimeError),
            tracing.tracer.start_as_current_span("failing"),
        ):
            raise RuntimeError(f"provider said password=hunter2-span for card {CARD_NUMBER}")

        text = _exported_text(span_exporter.get_finished_spans())
        assert [s for s in ("hunter2-span", CARD_NUMBER) if s in text] == []


class TestExporterWrapper:
    @pytest.mark.parametrize(
        ("name", "value", "expected"),
        [
            ("url.full", "http://h/p?page=2&cvc=123", "http://h/p?page=2&cvc=[redacted]"),
            ("http.url", "http://h/p?webKey=k1&x=1", "http://h/p?webKey=[redacted]&x=1"),
            ("http.target", "/p?card_last=4242", "/p?card_last=[redacted]"),
            ("url.query", "session_cookie=abc&page=2", "session_cookie=[redacted]&page=2"),
        ],
    )
    def test_query_values_masked_by_name(self, name: str, value: str, expected: str) -> None:
        inner = InMemorySpanExporter()

        ScrubbingSpanExporter(inner).export([ReadableSpan("GET", attributes={name: value})])

        [exported] = inner.get_finished_spans()
        assert exported.attributes == {name: expected}

    def test_clean_span_exported_unchanged(self) -> None:
        inner = InMemorySpanExporter()
        span = ReadableSpan("GET /me", attributes={"http.route": "/me", "http.status_code": 200})

        ScrubbingSpanExporter(inner).export([span])

        assert inner.get_finished_spans() == (span,)

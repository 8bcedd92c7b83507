"""Payment outcomes, processing time and Stripe call metrics move when a charge goes
through the API against the local payment provider simulator."""

from __future__ import annotations

import httpx
import pytest

from superior_one.config import Settings
from superior_one.resources import Resources
from superior_one.simulators.payment_provider import (
    ApiFault,
    FaultPlan,
    PaymentProviderSimulator,
)
from superior_one.simulators.server import ServerThread
from tests.observability.conftest import STRIPE_TIMEOUT_S, MetricReader, aimed_at_payment_provider
from tests.payments.factories import (
    charge,
    completed_load,
    create_parties,
    issue_invoice,
    save_billing_profile,
)

CREATE_INTENT = {"dependency": "stripe", "operation": "create_payment_intent"}


@pytest.fixture
def settings(
    settings: Settings, payment_simulator: tuple[PaymentProviderSimulator, ServerThread]
) -> Settings:
    return aimed_at_payment_provider(settings, payment_simulator[1])


async def _charge_new_invoice(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> httpx.Response:
    parties = await create_parties(resources, settings)
    await save_billing_profile(client, parties.shipper)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))
    return await charge(client, invoice.id, parties.shipper)


class TestPaymentOutcomes:
    async def test_payment_success_counted(
        self,
        client: httpx.AsyncClient,
        resources: Resources,
        settings: Settings,
        metric: MetricReader,
    ) -> None:
        before = metric("so_payments_total", outcome="succeeded")

        response = await _charge_new_invoice(client, resources, settings)

        assert response.status_code == 200, response.text
        assert metric("so_payments_total", outcome="succeeded") == before + 1

    async def test_payment_decline_counted_as_failed(
        self,
        client: httpx.AsyncClient,
        resources: Resources,
        settings: Settings,
        simulator: PaymentProviderSimulator,
        metric: MetricReader,
    ) -> None:
        simulator.faults = FaultPlan(
            api=[ApiFault(kind="decline", decline_code="insufficient_funds")]
        )
        failed_before = metric("so_payments_total", outcome="failed")
        succeeded_before = metric("so_payments_total", outcome="succeeded")

        response = await _charge_new_invoice(client, resources, settings)

        assert response.status_code == 402, response.text
        assert metric("so_payments_total", outcome="failed") == failed_before + 1
        assert metric("so_payments_total", outcome="succeeded") == succeeded_before

    @pytest.mark.parametrize("declined", [False, True], ids=["succeeded", "failed"])
    async def test_payment_processing_time_observed(
        self,
        client: httpx.AsyncClient,
        resources: Resources,
        settings: Settings,
        simulator: PaymentProviderSimulator,
        metric: MetricReader,
        declined: bool,
    ) -> None:
        if declined:
            simulator.faults = FaultPlan(api=[ApiFault(kind="decline")])
        count_before = metric("so_payment_processing_seconds_count")
        sum_before = metric("so_payment_processing_seconds_sum")

        await _charge_new_invoice(client, resources, settings)

        assert metric("so_payment_processing_seconds_count") == count_before + 1
        assert 0 < metric("so_payment_processing_seconds_sum") - sum_before < 30


class TestStripeCalls:
    @pytest.mark.parametrize(
        ("fault", "sample", "labels"),
        [
            (None, "so_external_call_duration_seconds_count", {"outcome": "ok"}),
            # A decline is a valid response, not a failed call.
            (
                ApiFault(kind="decline"),
                "so_external_call_duration_seconds_count",
                {"outcome": "ok"},
            ),
            (
                ApiFault(kind="server_error", status=503),
                "so_external_call_errors_total",
                {"kind": "http_5xx"},
            ),
            (
                ApiFault(kind="timeout", delay_s=STRIPE_TIMEOUT_S + 1.0),
                "so_external_call_errors_total",
                {"kind": "timeout"},
            ),
            (
                ApiFault(kind="timeout", delay_s=STRIPE_TIMEOUT_S + 1.0),
                "so_external_call_duration_seconds_count",
                {"outcome": "timeout"},
            ),
        ],
        ids=["ok", "decline", "5xx", "timeout", "timeout-latency"],
    )
    async def test_stripe_call_counted_by_outcome(
        self,
        client: httpx.AsyncClient,
        resources: Resources,
        settings: Settings,
        simulator: PaymentProviderSimulator,
        metric: MetricReader,
        fault: ApiFault | None,
        sample: str,
        labels: dict[str, str],
    ) -> None:
        if fault is not None:
            simulator.faults = FaultPlan(api=[fault])
        before = metric(sample, **CREATE_INTENT, **labels)

        await _charge_new_invoice(client, resources, settings)

        assert metric(sample, **CREATE_INTENT, **labels) == before + 1

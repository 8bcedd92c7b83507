"""Payment outcomes, processing time and Stripe call metrics move when a charge goes
through the API against the local payment provider simulator."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.payments.audit import AuditActor
from superior_one.payments.models import ChargeTrigger, Invoice, SettledBy
from superior_one.payments.runtime import open_provider
from superior_one.payments.service import call_create_intent, settle_attempt, start_charge
from superior_one.resources import Resources
from superior_one.simulators.payment_provider import (
    ApiFault,
    FaultPlan,
    PaymentProviderSimulator,
)
from superior_one.simulators.server import ServerThread
from tests.observability.conftest import STRIPE_TIMEOUT_S, MetricReader, aimed_at_payment_provider
from tests.payments.factories import (
    Parties,
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


async def _issue_new_invoice(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> tuple[Parties, Invoice]:
    parties = await create_parties(resources, settings)
    await save_billing_profile(client, parties.shipper)
    invoice = await issue_invoice(resources, settings, await completed_load(resources, parties))
    return parties, invoice


async def _charge_new_invoice(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> httpx.Response:
    parties, invoice = await _issue_new_invoice(client, resources, settings)
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


class CommitFailedError(Exception):
    pass


async def _fail_commit(self: AsyncSession) -> None:
    raise CommitFailedError


class TestPaymentRollback:
    @pytest.mark.parametrize("declined", [False, True], ids=["succeeded", "failed"])
    async def test_payment_rollback_not_counted(
        self,
        client: httpx.AsyncClient,
        resources: Resources,
        settings: Settings,
        simulator: PaymentProviderSimulator,
        metric: MetricReader,
        monkeypatch: pytest.MonkeyPatch,
        declined: bool,
    ) -> None:
        if declined:
            simulator.faults = FaultPlan(api=[ApiFault(kind="decline")])
        _, invoice = await _issue_new_invoice(client, resources, settings)
        actor = AuditActor.system("test")
        plan = await start_charge(
            resources.sessionmaker,
            settings,
            invoice.id,
            actor,
            principal=None,
            trigger=ChargeTrigger.USER,
        )
        async with open_provider(settings) as provider:
            outcome = await call_create_intent(provider, plan.request, plan.idempotency_key)
        outcome_label = "failed" if declined else "succeeded"
        before = metric("so_payments_total", outcome=outcome_label)
        observed_before = metric("so_payment_processing_seconds_count")
        monkeypatch.setattr(AsyncSession, "commit", _fail_commit)

        with pytest.raises(CommitFailedError):
            async with unit_of_work(resources.sessionmaker) as session:
                await settle_attempt(
                    session, settings, plan.attempt_id, outcome, actor, SettledBy.RESPONSE
                )

        assert metric("so_payments_total", outcome=outcome_label) == before
        assert metric("so_payment_processing_seconds_count") == observed_before


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

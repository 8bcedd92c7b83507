"""Carrier vetting through the FMCSA simulator, the worker and the API.

Covers the real sample reply of USDOT 158121, the simulator's generated
not-authorized, out-of-service, uninsured and unknown carriers, FMCSA being
down (UNAVAILABLE with the last known result, never VERIFIED), and changes
between verifications being recorded and notified.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from superior_one.accounts.models import OrganizationType, Role
from superior_one.carriers import repository
from superior_one.carriers.models import (
    Carrier,
    CarrierNotification,
    CarrierStatus,
    CarrierVerification,
    NotificationKind,
)
from superior_one.carriers.verification import verify_and_record
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.integrations.fmcsa import FmcsaClient
from superior_one.resources import Resources
from superior_one.simulators.fmcsa import Fault, PinnedResponse, SimulatorServer
from tests.carriers.conftest import WEB_KEY
from tests.carriers.factories import create_carrier
from tests.factories import auth_headers, create_organization, create_user
from tests.jobs.helpers import run_worker_until

SAMPLE_DOT = 158121


async def _carrier(resources: Resources, carrier_id: object) -> Carrier:
    async with unit_of_work(resources.sessionmaker) as session:
        carrier = await repository.get(session, carrier_id)  # type: ignore[arg-type]
    assert carrier is not None
    return carrier


async def _pending_carrier(resources: Resources, dot_number: int) -> Carrier:
    return await create_carrier(
        resources.sessionmaker,
        dot_number=dot_number,
        status=CarrierStatus.PENDING,
        last_result_status=None,
        last_verified_at=None,
        legal_name=None,
        common_authority_status=None,
        contract_authority_status=None,
        allowed_to_operate=None,
        bipd_insurance_required=None,
        bipd_required_cents=None,
        bipd_on_file_cents=None,
    )


async def test_verify_real_sample_reply_is_verified(
    resources: Resources,
    fmcsa: FmcsaClient,
    carrier_settings: Settings,
    qcmobile_samples: object,
) -> None:
    carrier = await _pending_carrier(resources, SAMPLE_DOT)

    outcome = await verify_and_record(resources.sessionmaker, fmcsa, carrier_settings, carrier.id)
    stored = await _carrier(resources, carrier.id)

    assert outcome is not None
    assert outcome.status is CarrierStatus.VERIFIED
    assert stored.verification_status is CarrierStatus.VERIFIED
    assert stored.legal_name == "NORTHWOODS TRUCKING INC"
    assert stored.common_authority_status == "A"
    assert stored.bipd_on_file_cents == 100_000_000
    assert stored.bipd_required_cents == 75_000_000
    assert stored.safety_rating == "S"
    assert stored.last_verified_at is not None


@pytest.mark.parametrize(
    ("dot_number", "status", "field"),
    [
        (3000100, CarrierStatus.NOT_FOUND, "content.carrier"),
        (3000101, CarrierStatus.NOT_AUTHORIZED, "allowedToOperate"),
        (3000102, CarrierStatus.OUT_OF_SERVICE, "oosDate"),
        (3000103, CarrierStatus.INSUFFICIENT_INSURANCE, "bipdInsuranceOnFile"),
    ],
)
async def test_verify_failed_checks_are_recorded_with_their_field(
    resources: Resources,
    fmcsa: FmcsaClient,
    carrier_settings: Settings,
    dot_number: int,
    status: CarrierStatus,
    field: str,
) -> None:
    carrier = await _pending_carrier(resources, dot_number)

    await verify_and_record(resources.sessionmaker, fmcsa, carrier_settings, carrier.id)
    stored = await _carrier(resources, carrier.id)

    assert stored.verification_status is status
    assert field in [reason["field"] for reason in stored.verification_reasons]


async def test_verify_fmcsa_down_keeps_last_result(
    resources: Resources,
    fmcsa: FmcsaClient,
    carrier_settings: Settings,
    simulator: SimulatorServer,
) -> None:
    carrier = await _pending_carrier(resources, 3000205)
    await verify_and_record(resources.sessionmaker, fmcsa, carrier_settings, carrier.id)
    verified = await _carrier(resources, carrier.id)
    simulator.state.add_fault(Fault(kind="maintenance", count=None))

    outcome = await verify_and_record(resources.sessionmaker, fmcsa, carrier_settings, carrier.id)
    stored = await _carrier(resources, carrier.id)

    assert outcome is not None
    assert outcome.retry_in_s is not None
    assert stored.verification_status is CarrierStatus.UNAVAILABLE
    assert stored.unavailable_reason == "maintenance"
    assert stored.last_result_status is CarrierStatus.VERIFIED
    assert stored.last_verified_at == verified.last_verified_at
    assert stored.legal_name == verified.legal_name


async def test_verify_transient_errors_are_unavailable(
    resources: Resources,
    fmcsa: FmcsaClient,
    carrier_settings: Settings,
    simulator: SimulatorServer,
) -> None:
    carrier = await _pending_carrier(resources, 3000003 + 300)
    simulator.state.add_fault(Fault(kind="status", status=503, count=1))
    simulator.state.add_fault(Fault(kind="timeout", delay_seconds=6.0, count=1))
    simulator.state.add_fault(Fault(kind="rate_limit", retry_after_seconds=1, count=1))

    first = await verify_and_record(resources.sessionmaker, fmcsa, carrier_settings, carrier.id)
    second = await verify_and_record(resources.sessionmaker, fmcsa, carrier_settings, carrier.id)
    third = await verify_and_record(resources.sessionmaker, fmcsa, carrier_settings, carrier.id)
    stored = await _carrier(resources, carrier.id)

    assert [o.status if o else None for o in (first, second, third)] == [
        CarrierStatus.UNAVAILABLE
    ] * 3
    assert stored.verification_status is CarrierStatus.UNAVAILABLE
    assert stored.last_result_status is None


async def test_verify_records_and_notifies_authority_revoked(
    resources: Resources,
    fmcsa: FmcsaClient,
    carrier_settings: Settings,
    simulator: SimulatorServer,
) -> None:
    dot = 3000207
    carrier = await _pending_carrier(resources, dot)
    await verify_and_record(resources.sessionmaker, fmcsa, carrier_settings, carrier.id)
    async with httpx.AsyncClient() as http:
        original = (
            await http.get(f"{simulator.base_url}/carriers/{dot}", params={"webKey": WEB_KEY})
        ).json()
    revoked = dict(original)
    revoked["content"] = dict(original["content"])
    revoked["content"]["carrier"] = {
        **original["content"]["carrier"],
        "commonAuthorityStatus": "I",
        "allowedToOperate": "N",
    }
    simulator.state.pin(PinnedResponse(path=f"carriers/{dot}", status=200, body=revoked))

    outcome = await verify_and_record(resources.sessionmaker, fmcsa, carrier_settings, carrier.id)

    assert outcome is not None
    assert {c.kind for c in outcome.changes} == {
        "status_changed",
        "authority_revoked",
        "operation_not_allowed",
    }
    async with unit_of_work(resources.sessionmaker) as session:
        history = list(
            (
                await session.execute(
                    select(CarrierVerification)
                    .where(CarrierVerification.carrier_id == carrier.id)
                    .order_by(CarrierVerification.id)
                )
            ).scalars()
        )
        notices = list(
            (
                await session.execute(
                    select(CarrierNotification).where(CarrierNotification.carrier_id == carrier.id)
                )
            ).scalars()
        )
    assert len(history) == 2
    assert history[0].changes == []
    assert {c["field"] for c in history[1].changes} == {
        "verificationStatus",
        "commonAuthorityStatus",
        "allowedToOperate",
    }
    assert [n.kind for n in notices] == [NotificationKind.CARRIER_STATUS_CHANGED]


async def test_registered_carrier_verified_then_refused(
    resources: Resources,
    client: httpx.AsyncClient,
    settings: Settings,
    carrier_settings: Settings,
    qcmobile_samples: object,
) -> None:
    organization = await create_organization(resources.sessionmaker, OrganizationType.CARRIER)
    dispatcher = await create_user(resources.sessionmaker, settings, organization, Role.DISPATCHER)
    shipper_org = await create_organization(resources.sessionmaker, OrganizationType.SHIPPER)
    shipper = await create_user(resources.sessionmaker, settings, shipper_org, Role.ORG_ADMIN)
    headers = auth_headers(settings, dispatcher)

    registered = await client.post(
        "/carriers", json={"dotNumber": f"USDOT {SAMPLE_DOT}"}, headers=headers
    )
    policy = await client.post(
        "/carriers/me/insurance-policies",
        json={
            "coverageType": "AUTO_LIABILITY",
            "insurerName": "Great Plains Mutual",
            "policyNumber": "AL-2024-0001",
            "amountCents": 100_000_000,
            "effectiveDate": "2024-01-01",
            "expiryDate": "2024-06-30",
        },
        headers=headers,
    )
    assert registered.status_code == 201, registered.text
    assert policy.status_code == 201, policy.text
    assert registered.json()["verificationStatus"] == "PENDING"
    carrier_id = registered.json()["id"]

    async def verified() -> bool:
        response = await client.get("/carriers/me", headers=headers)
        return bool(response.json()["verificationStatus"] == "VERIFIED")

    await run_worker_until(carrier_settings, verified)

    shipper_headers = auth_headers(settings, shipper)
    late = await client.get(
        f"/carriers/{carrier_id}/eligibility",
        params={"pickupAt": "2024-07-01T08:00:00-05:00", "timeZone": "America/Chicago"},
        headers=shipper_headers,
    )
    in_time = await client.get(
        f"/carriers/{carrier_id}/eligibility",
        params={"pickupAt": "2024-06-30T08:00:00-05:00", "timeZone": "America/Chicago"},
        headers=shipper_headers,
    )
    assert late.status_code == 200, late.text
    assert late.json()["eligible"] is False
    assert [r["code"] for r in late.json()["reasons"]] == ["insurance_expires_before_pickup"]
    assert late.json()["reasons"][0]["value"] == "2024-06-30"
    assert in_time.json()["eligible"] is True
    assert in_time.json()["reasons"] == []

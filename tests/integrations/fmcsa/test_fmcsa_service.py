"""Carrier verification (acceptance case C13): identifiers, statuses on the
stubbed replies, and never VERIFIED when FMCSA cannot be used."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from pydantic import SecretStr

from superior_one.errors import UnprocessableError
from superior_one.integrations.fmcsa import (
    CarrierIdentifier,
    FmcsaClient,
    IdentifierKind,
    VerificationStatus,
    evaluate_carrier,
    parse_carrier_identifier,
    verify_carrier,
)
from superior_one.integrations.fmcsa.schemas import CarrierRecord
from superior_one.simulators.fmcsa import Fault, PinnedResponse, SimulatorServer

DOT = IdentifierKind.DOT
MC = IdentifierKind.MC


def _dot(number: int) -> CarrierIdentifier:
    return CarrierIdentifier(kind=DOT, number=number)


def _record(**fields: Any) -> CarrierRecord:
    return CarrierRecord.model_validate(
        {"dotNumber": 3000002, "legalName": "NORTHFIELD HAULING INC", **fields}
    )


# --- identifiers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind", "expected"),
    [
        ("MC-123456", None, (MC, 123456)),
        ("mc 123456", None, (MC, 123456)),
        ("MC#123456", None, (MC, 123456)),
        ("USDOT 3000002", None, (DOT, 3000002)),
        ("usdot3000002", None, (DOT, 3000002)),
        ("DOT 3000002", None, (DOT, 3000002)),
        (3000002, "dot", (DOT, 3000002)),
        ("123456", IdentifierKind.MC, (MC, 123456)),
        ("USDOT 3000002", "dot", (DOT, 3000002)),
    ],
)
def test_parse_carrier_identifier_reads_forms(
    raw: str | int, kind: IdentifierKind | str | None, expected: tuple[IdentifierKind, int]
) -> None:
    identifier = parse_carrier_identifier(raw, kind)
    assert (identifier.kind, identifier.number) == expected


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("123456", None),  # a bare number is never guessed to be DOT or MC
        (3000002, None),
        ("MC-123456", "dot"),  # prefix contradicts the declared kind
        ("FF058485", None),  # freight forwarder dockets cannot be looked up
        ("ABC 1", None),
        ("MC-0", None),
        ("123456789", "dot"),
        ("", None),
    ],
)
def test_parse_carrier_identifier_rejects_ambiguous_or_invalid(
    raw: str | int, kind: str | None
) -> None:
    with pytest.raises(UnprocessableError):
        parse_carrier_identifier(raw, kind)


# --- statuses from FMCSA's data ------------------------------------------------------------


async def test_verify_carrier_reports_not_found_for_null_content(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    simulator.state.pin(PinnedResponse(path="carriers/9999999", body={"content": None}))
    result = await verify_carrier(fmcsa, _dot(9999999))
    assert result.status is VerificationStatus.NOT_FOUND
    assert result.verified is False


async def test_verify_carrier_reports_not_found_without_legal_name(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    body = {"content": {"carrier": {"dotNumber": 9999999}}}
    simulator.state.pin(PinnedResponse(path="carriers/9999999", body=body))
    result = await verify_carrier(fmcsa, _dot(9999999))
    assert result.status is VerificationStatus.NOT_FOUND


async def test_verify_carrier_reads_docket_list_as_not_authorized(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    carrier = {
        "dotNumber": 3000001,
        "legalName": "PRAIRIE LINE FREIGHT LLC",
        "allowedToOperate": "N",
    }
    simulator.state.pin(
        PinnedResponse(
            path="carriers/docket-number/123456", body={"content": [{"carrier": carrier}]}
        )
    )
    result = await verify_carrier(fmcsa, parse_carrier_identifier("mc 123456"))

    assert result.status is VerificationStatus.NOT_AUTHORIZED
    assert result.carrier is not None
    assert result.carrier.dot_number == 3000001
    assert [(r.field, r.value) for r in result.reasons] == [("allowedToOperate", "N")]
    assert [r.path for r in simulator.state.requests()] == ["carriers/docket-number/123456"]


async def test_verify_carrier_sends_usdot_to_carrier_path(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    carrier = {"dotNumber": 3000002, "legalName": "NORTHFIELD HAULING INC",
               "allowedToOperate": "Y", "bipdInsuranceOnFile": "750"}  # fmt: skip
    simulator.state.pin(
        PinnedResponse(path="carriers/3000002", body={"content": {"carrier": carrier}})
    )
    result = await verify_carrier(fmcsa, parse_carrier_identifier("USDOT 3000002"))

    # Authority is fine; whether the insurance covers a load's pickup date is
    # the vetting decision's job, against our own policy records.
    assert result.status is VerificationStatus.VERIFIED
    assert result.carrier is not None
    assert result.carrier.bipd_insurance_on_file_cents == 75_000_000
    assert [r.path for r in simulator.state.requests()] == ["carriers/3000002"]


async def test_verify_carrier_reports_ambiguous_docket(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    result = await verify_carrier(fmcsa, parse_carrier_identifier("MC 123499"))
    assert result.status is VerificationStatus.AMBIGUOUS
    assert result.verified is False


async def test_verify_carrier_verifies_sample_carrier(
    fmcsa: FmcsaClient, simulator: SimulatorServer, qcmobile_dir: object
) -> None:
    result = await verify_carrier(fmcsa, _dot(158121))
    assert result.status is VerificationStatus.VERIFIED
    assert result.verified is True
    assert result.age_s is not None


@pytest.mark.parametrize(
    ("fields", "status", "cited"),
    [
        ({"allowedToOperate": "Y"}, VerificationStatus.VERIFIED, []),
        ({}, VerificationStatus.NOT_AUTHORIZED, ["allowedToOperate"]),
        ({"allowedToOperate": "u"}, VerificationStatus.NOT_AUTHORIZED, ["allowedToOperate"]),
        (
            {"allowedToOperate": "N", "oosDate": "2024-05-14"},
            VerificationStatus.OUT_OF_SERVICE,
            ["oosDate", "allowedToOperate"],
        ),
        (
            {"allowedToOperate": "Y", "commonAuthorityStatus": "I",
             "contractAuthorityStatus": "N"},
            VerificationStatus.NOT_AUTHORIZED,
            ["commonAuthorityStatus", "contractAuthorityStatus"],
        ),
        (
            {"allowedToOperate": "Y", "commonAuthorityStatus": "N",
             "contractAuthorityStatus": "A"},
            VerificationStatus.VERIFIED,
            [],
        ),
        ({"allowedToOperate": "Y", "statusCode": "I"}, VerificationStatus.NOT_AUTHORIZED,
         ["statusCode"]),
        (
            {"allowedToOperate": "Y", "bipdInsuranceRequired": "Y", "bipdRequiredAmount": "750",
             "bipdInsuranceOnFile": "0"},
            VerificationStatus.INSUFFICIENT_INSURANCE,
            ["bipdInsuranceOnFile"],
        ),
        (
            {"allowedToOperate": "Y", "bipdInsuranceRequired": "Y", "bipdRequiredAmount": "750",
             "bipdInsuranceOnFile": "u"},
            VerificationStatus.INSUFFICIENT_INSURANCE,
            ["bipdInsuranceOnFile"],
        ),
        (
            {"allowedToOperate": "Y", "bipdInsuranceRequired": "u", "bipdRequiredAmount": "750",
             "bipdInsuranceOnFile": "0"},
            VerificationStatus.VERIFIED,
            [],
        ),
    ],
    ids=["allowed", "allowed-missing", "allowed-unknown", "oos", "authority-inactive",
         "contract-active", "dot-inactive", "insurance-zero", "insurance-unknown",
         "insurance-not-required"],
)  # fmt: skip
def test_evaluate_carrier_cites_each_failed_field(
    fields: dict[str, Any], status: VerificationStatus, cited: list[str]
) -> None:
    got_status, reasons = evaluate_carrier(_record(**fields))
    assert got_status is status
    assert [reason.field for reason in reasons] == cited


def test_evaluate_carrier_reports_none_as_not_found() -> None:
    status, _ = evaluate_carrier(None)
    assert status is VerificationStatus.NOT_FOUND


# --- FMCSA unusable: UNAVAILABLE, never VERIFIED --------------------------------------------


async def test_verify_carrier_reports_unavailable_after_503_timeout_429(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    client = make_client(fmcsa_read_timeout_s=0.3)
    simulator.state.add_fault(Fault(kind="status", status=503, count=1))
    simulator.state.add_fault(Fault(kind="timeout", delay_seconds=1.0, count=1))
    simulator.state.add_fault(Fault(kind="rate_limit", retry_after_seconds=0.01, count=1))

    result = await verify_carrier(client, _dot(3000003))

    assert result.status is VerificationStatus.UNAVAILABLE
    assert result.verified is False
    assert result.unavailable_reason == "rate_limited"
    assert len(simulator.state.requests()) == 3  # retried with backoff
    assert result.carrier is None  # nothing known before


async def test_verify_carrier_does_not_cache_unavailability(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    client = make_client(fmcsa_retry_attempts=1)
    simulator.state.add_fault(Fault(kind="status", status=503, count=1))
    first = await verify_carrier(client, _dot(3000004))

    second = await verify_carrier(client, _dot(3000004))

    assert first.status is VerificationStatus.UNAVAILABLE
    assert second.status is VerificationStatus.VERIFIED
    assert second.from_cache is False


async def test_verify_carrier_last_known_when_simulator_down(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    before = await verify_carrier(fmcsa, _dot(158121))
    simulator.stop()
    await asyncio.sleep(0.05)

    after = await verify_carrier(fmcsa, _dot(158121), max_age_s=0)

    assert after.status is VerificationStatus.UNAVAILABLE
    assert after.verified is False
    assert after.unavailable_reason == "network_error"
    assert after.last_known_status is VerificationStatus.VERIFIED
    assert after.carrier == before.carrier
    assert after.fetched_at == before.fetched_at
    assert after.age_s is not None
    assert after.age_s > 0
    assert after.from_cache is True


async def test_verify_carrier_returns_last_known_when_over_budget(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    client = make_client(fmcsa_call_budget="1/minute", fmcsa_budget_max_wait_s=0)
    await verify_carrier(client, _dot(158121))

    result = await verify_carrier(client, _dot(158121), max_age_s=0)

    assert result.status is VerificationStatus.UNAVAILABLE
    assert result.unavailable_reason == "over_budget"
    assert result.last_known_status is VerificationStatus.VERIFIED
    assert result.carrier is not None


async def test_verify_carrier_reports_unavailable_during_maintenance(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    simulator.state.add_fault(Fault(kind="maintenance", count=None))
    result = await verify_carrier(fmcsa, _dot(158121))
    assert result.status is VerificationStatus.UNAVAILABLE
    assert result.unavailable_reason == "maintenance"


async def test_verify_carrier_reports_unavailable_on_rejected_web_key(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    result = await verify_carrier(make_client(fmcsa_web_key=SecretStr("bad")), _dot(158121))
    assert result.status is VerificationStatus.UNAVAILABLE
    assert result.unavailable_reason == "web_key_rejected"


async def test_verify_carrier_keeps_last_known_not_authorized_status(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    await verify_carrier(fmcsa, _dot(3000001))  # generated profile: not allowed to operate
    simulator.state.add_fault(Fault(kind="status", status=500, count=None))

    result = await verify_carrier(fmcsa, _dot(3000001), max_age_s=0)

    assert result.status is VerificationStatus.UNAVAILABLE
    assert result.last_known_status is VerificationStatus.NOT_AUTHORIZED


async def test_verify_carrier_limits_simultaneous_burst_to_budget(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    client = make_client(fmcsa_call_budget="10/minute", fmcsa_budget_max_wait_s=0)
    dots = [3_300_004 + 10 * i for i in range(12)]

    results = await asyncio.gather(*(verify_carrier(client, _dot(dot)) for dot in dots))

    assert len(simulator.state.requests()) == 10
    statuses = Counter(result.status for result in results)
    assert statuses[VerificationStatus.UNAVAILABLE] == 2
    assert {r.unavailable_reason for r in results if r.unavailable_reason} == {"over_budget"}


def test_verification_reason_dumps_wire_field_name() -> None:
    status, reasons = evaluate_carrier(_record(allowedToOperate="N", oosDate=date(2024, 5, 14)))
    assert status is VerificationStatus.OUT_OF_SERVICE
    assert reasons[0].model_dump(by_alias=True) == {
        "field": "oosDate",
        "value": "2024-05-14",
        "message": "The carrier is under an out-of-service order.",
    }

"""Carrier verification against FMCSA: what callers (endpoints, jobs) use.

Verification never fails open. Whenever FMCSA cannot be used (down, maintenance,
over our call budget, circuit open, misconfigured, unreadable reply) the status
is UNAVAILABLE, with the last known reply and its age for a person to judge,
and ``verified`` stays false (``verify_carrier`` catches every FmcsaError).

Typical use from a job::

    client = FmcsaClient.create(settings, http=http, redis=redis)
    result = await verify_carrier(client, parse_carrier_identifier("USDOT 158121"))
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog
from pydantic import Field

from superior_one.errors import UnprocessableError
from superior_one.integrations.fmcsa.client import MAX_DOT_OR_DOCKET, Fetched, FmcsaClient
from superior_one.integrations.fmcsa.errors import (
    FmcsaConfigurationError,
    FmcsaError,
)
from superior_one.integrations.fmcsa.schemas import CENTS_PER_THOUSAND_USD, CarrierRecord, Flag
from superior_one.schemas import Schema

log = structlog.get_logger(__name__)


class IdentifierKind(StrEnum):
    DOT = "dot"
    MC = "mc"


class VerificationStatus(StrEnum):
    VERIFIED = "VERIFIED"
    NOT_FOUND = "NOT_FOUND"
    NOT_AUTHORIZED = "NOT_AUTHORIZED"
    OUT_OF_SERVICE = "OUT_OF_SERVICE"
    INSUFFICIENT_INSURANCE = "INSUFFICIENT_INSURANCE"
    # An MC number that FMCSA maps to more than one carrier: a person decides.
    AMBIGUOUS = "AMBIGUOUS"
    UNAVAILABLE = "UNAVAILABLE"


class CarrierIdentifier(Schema):
    kind: IdentifierKind
    number: int = Field(gt=0, le=MAX_DOT_OR_DOCKET)

    def __str__(self) -> str:
        return f"{'USDOT' if self.kind is IdentifierKind.DOT else 'MC'} {self.number}"


class VerificationReason(Schema):
    """One failed check, citing the FMCSA field and the value it had."""

    field: str
    value: str | None
    message: str


class CarrierVerification(Schema):
    identifier: CarrierIdentifier
    status: VerificationStatus
    reasons: list[VerificationReason] = Field(default_factory=list)
    carrier: CarrierRecord | None = None
    # When FMCSA gave the data above; for UNAVAILABLE, the last known data.
    fetched_at: datetime | None = None
    age_s: float | None = None
    from_cache: bool = False
    # For UNAVAILABLE: the status of the last known data, and why FMCSA could not be used.
    last_known_status: VerificationStatus | None = None
    unavailable_reason: str | None = None

    @property
    def verified(self) -> bool:
        return self.status is VerificationStatus.VERIFIED


_DOT_PATTERN = re.compile(r"^(?:US\s*DOT|DOT)\s*(?:NO\.?|NUMBER|#)?[\s#:.-]*(\d{1,8})$")
_MC_PATTERN = re.compile(r"^MC\s*(?:NO\.?|NUMBER|#)?[\s#:.-]*(\d{1,8})$")
_OTHER_DOCKET_PATTERN = re.compile(r"^(FF|MX)[\s#:.-]*\d{1,8}$")


def parse_carrier_identifier(
    value: str | int, kind: IdentifierKind | str | None = None
) -> CarrierIdentifier:
    """Read "USDOT 3000002", "MC-123456", "mc 123456", or a bare number with its kind.

    A bare number is never guessed to be a DOT or an MC number: without ``kind``
    it is rejected. A prefix that contradicts ``kind`` is rejected too.
    """
    text = str(value).strip().upper()
    wanted = IdentifierKind(kind.lower()) if isinstance(kind, str) else kind

    if text.isdigit():
        if wanted is None:
            raise UnprocessableError(
                f"Carrier identifier {value!r} is a bare number; say whether it is a "
                "USDOT or an MC number (for example 'USDOT 3000002' or 'MC-123456').",
                field="identifier",
            )
        return _identifier(wanted, int(text), value)

    found: IdentifierKind | None = None
    if match := _DOT_PATTERN.match(text):
        found = IdentifierKind.DOT
    elif match := _MC_PATTERN.match(text):
        found = IdentifierKind.MC
    elif _OTHER_DOCKET_PATTERN.match(text):
        raise UnprocessableError(
            f"Carrier identifier {value!r} is a freight forwarder (FF) or Mexican (MX) "
            "docket; only MC dockets can be looked up. Give the USDOT number instead.",
            field="identifier",
        )
    if match is None or found is None:
        raise UnprocessableError(
            f"Carrier identifier {value!r} is not a USDOT or MC number; use a form like "
            "'USDOT 3000002' or 'MC-123456'.",
            field="identifier",
        )
    if wanted is not None and wanted is not found:
        raise UnprocessableError(
            f"Carrier identifier {value!r} is an {found.value.upper()} number but was given "
            f"as {wanted.value.upper()}; correct one of them.",
            field="identifier",
        )
    return _identifier(found, int(match.group(1)), value)


def _identifier(kind: IdentifierKind, number: int, raw: Any) -> CarrierIdentifier:
    if not 0 < number <= MAX_DOT_OR_DOCKET:
        raise UnprocessableError(
            f"Carrier identifier {raw!r} is out of range; USDOT and MC numbers run from 1 "
            f"to {MAX_DOT_OR_DOCKET}.",
            field="identifier",
        )
    return CarrierIdentifier(kind=kind, number=number)


def evaluate_carrier(
    record: CarrierRecord | None,
) -> tuple[VerificationStatus, list[VerificationReason]]:
    """Derive the status FMCSA's data supports, with every failed check as a reason.

    The status is the most serious failed check (not found, out of service, not
    authorized, insurance); the reasons list all of them.
    """
    if record is None:
        return VerificationStatus.NOT_FOUND, [
            VerificationReason(
                field="content.carrier", value=None, message="FMCSA has no such carrier."
            )
        ]

    failures: list[tuple[VerificationStatus, VerificationReason]] = []

    if record.oos_date is not None:
        failures.append(
            (
                VerificationStatus.OUT_OF_SERVICE,
                VerificationReason(
                    field="oosDate",
                    value=record.oos_date.isoformat(),
                    message="The carrier is under an out-of-service order.",
                ),
            )
        )

    # Only "Y" allows operation: "N", "u" and a missing value all count as not allowed.
    if record.allowed_to_operate is not Flag.YES:
        failures.append(
            (
                VerificationStatus.NOT_AUTHORIZED,
                VerificationReason(
                    field="allowedToOperate",
                    value=record.allowed_to_operate.value,
                    message="FMCSA does not allow the carrier to operate.",
                ),
            )
        )

    if record.status_code is not None and record.status_code != "A":
        failures.append(
            (
                VerificationStatus.NOT_AUTHORIZED,
                VerificationReason(
                    field="statusCode",
                    value=record.status_code,
                    message="The USDOT registration is not active.",
                ),
            )
        )

    authorities = {
        "commonAuthorityStatus": record.common_authority_status,
        "contractAuthorityStatus": record.contract_authority_status,
    }
    reported = {name: value for name, value in authorities.items() if value is not None}
    # A reply without authority fields carries no authority data. A reply that
    # has them must show common or contract authority active ("A").
    if reported and "A" not in reported.values():
        for name, value in reported.items():
            failures.append(
                (
                    VerificationStatus.NOT_AUTHORIZED,
                    VerificationReason(
                        field=name,
                        value=value,
                        message="The carrier has no active for-hire operating authority.",
                    ),
                )
            )

    required = record.bipd_required_amount_cents
    on_file = record.bipd_insurance_on_file_cents
    insurance_required = record.bipd_insurance_required is Flag.YES and required is not None
    if insurance_required and (on_file is None or on_file < (required or 0)):
        failures.append(
            (
                VerificationStatus.INSUFFICIENT_INSURANCE,
                VerificationReason(
                    field="bipdInsuranceOnFile",
                    value=None if on_file is None else str(on_file // CENTS_PER_THOUSAND_USD),
                    message=(
                        "Liability insurance on file (thousands of USD) is below the "
                        f"required {(required or 0) // CENTS_PER_THOUSAND_USD}."
                    ),
                ),
            )
        )

    if not failures:
        return VerificationStatus.VERIFIED, []
    status = min((status for status, _ in failures), key=_SEVERITY.index)
    return status, [reason for _, reason in failures]


_SEVERITY = [
    VerificationStatus.OUT_OF_SERVICE,
    VerificationStatus.NOT_AUTHORIZED,
    VerificationStatus.INSUFFICIENT_INSURANCE,
]


async def verify_carrier(
    client: FmcsaClient,
    identifier: CarrierIdentifier,
    *,
    max_age_s: float | None = None,
) -> CarrierVerification:
    """Verify one carrier against FMCSA; VERIFIED only from a reply FMCSA returned.

    ``max_age_s`` bounds how old a cached reply may be to count as current
    (``None``: the configured ``fmcsa_cache_fresh_s``; 0: always ask FMCSA).
    """
    try:
        if identifier.kind is IdentifierKind.DOT:
            fetched = await client.carrier(identifier.number, max_age_s=max_age_s)
            return _verification(identifier, fetched)
        found = await client.carriers_by_docket(identifier.number, max_age_s=max_age_s)
        return _docket_verification(identifier, found)
    except FmcsaError as exc:
        return _unavailable(identifier, exc)


def _verification(
    identifier: CarrierIdentifier, fetched: Fetched[CarrierRecord | None]
) -> CarrierVerification:
    status, reasons = evaluate_carrier(fetched.value)
    log.info(
        "fmcsa.carrier_verified",
        identifier=str(identifier),
        status=status.value,
        from_cache=fetched.from_cache,
    )
    return CarrierVerification(
        identifier=identifier,
        status=status,
        reasons=reasons,
        carrier=fetched.value,
        fetched_at=fetched.fetched_at,
        age_s=fetched.age_s(),
        from_cache=fetched.from_cache,
    )


def _docket_verification(
    identifier: CarrierIdentifier, found: Fetched[list[CarrierRecord]]
) -> CarrierVerification:
    if len(found.value) <= 1:
        single = Fetched(
            value=found.value[0] if found.value else None,
            fetched_at=found.fetched_at,
            from_cache=found.from_cache,
        )
        return _verification(identifier, single)
    dots = ", ".join(str(record.dot_number) for record in found.value)
    return CarrierVerification(
        identifier=identifier,
        status=VerificationStatus.AMBIGUOUS,
        reasons=[
            VerificationReason(
                field="content[].carrier.dotNumber",
                value=dots,
                message="FMCSA lists several carriers for this MC number; verify by USDOT.",
            )
        ],
        fetched_at=found.fetched_at,
        age_s=found.age_s(),
        from_cache=found.from_cache,
    )


def _unavailable(identifier: CarrierIdentifier, exc: FmcsaError) -> CarrierVerification:
    log_method = log.error if isinstance(exc, FmcsaConfigurationError) else log.warning
    log_method(
        "fmcsa.verification_unavailable",
        identifier=str(identifier),
        reason=exc.reason,
        has_last_known=exc.last_known is not None,
    )
    result = CarrierVerification(
        identifier=identifier,
        status=VerificationStatus.UNAVAILABLE,
        reasons=[VerificationReason(field="fmcsa", value=exc.reason, message=exc.detail)],
        unavailable_reason=exc.reason,
    )
    last = exc.last_known
    if not isinstance(last, Fetched):
        return result

    record: CarrierRecord | None
    if isinstance(last.value, list):
        record = last.value[0] if len(last.value) == 1 else None
        last_status = (
            VerificationStatus.AMBIGUOUS if len(last.value) > 1 else evaluate_carrier(record)[0]
        )
    else:
        record = last.value
        last_status = evaluate_carrier(record)[0]
    return result.model_copy(
        update={
            "carrier": record,
            "fetched_at": last.fetched_at,
            "age_s": last.age_s(datetime.now(UTC)),
            "from_cache": True,
            "last_known_status": last_status,
        }
    )

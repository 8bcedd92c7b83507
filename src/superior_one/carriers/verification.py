"""Verifying carriers against FMCSA and recording what changed.

No transaction is held across the FMCSA call: the carrier is read in one unit
of work, FMCSA is asked, and the outcome is written in another. When FMCSA
does not reply, the carrier becomes UNAVAILABLE and keeps its last known facts,
their status and their age; it never becomes VERIFIED that way.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from limits import parse as parse_limit
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from superior_one.carriers import repository
from superior_one.carriers.models import (
    Carrier,
    CarrierStatus,
    CarrierVerification,
    NotificationKind,
    VerificationSource,
)
from superior_one.carriers.notifications import Notice, notify
from superior_one.config import Settings
from superior_one.db import unit_of_work
from superior_one.integrations.fmcsa.client import FmcsaClient
from superior_one.integrations.fmcsa.schemas import CarrierRecord, Flag
from superior_one.integrations.fmcsa.service import (
    CarrierIdentifier,
    IdentifierKind,
    VerificationStatus,
    verify_carrier,
)
from superior_one.integrations.fmcsa.service import (
    CarrierVerification as FmcsaVerification,
)

log = structlog.get_logger(__name__)

# Our own call budget running out is not FMCSA being down: the check waits for
# its turn and the carrier keeps its current status meanwhile.
QUEUED_REASONS = frozenset({"over_budget"})


@dataclass(frozen=True, slots=True)
class Change:
    kind: str
    field: str
    before: Any
    after: Any

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "field": self.field, "from": self.before, "to": self.after}


@dataclass(frozen=True, slots=True)
class VerificationOutcome:
    carrier_id: uuid.UUID
    status: CarrierStatus
    changes: list[Change]
    # False when nothing was written: our own FMCSA budget was used up, so the
    # check waits for its turn (within ``retry_in_s``, the budget's window).
    recorded: bool
    # Set when the check should run again later (FMCSA unavailable or budget used up).
    retry_in_s: float | None = None


async def verify_and_record(
    sessionmaker: async_sessionmaker[AsyncSession],
    fmcsa: FmcsaClient,
    settings: Settings,
    carrier_id: uuid.UUID,
) -> VerificationOutcome | None:
    """Ask FMCSA about one carrier and record the reply; ``None`` if the carrier is gone."""
    async with unit_of_work(sessionmaker) as session:
        carrier = await repository.get(session, carrier_id)
        if carrier is None or not carrier.is_active:
            return None
        identifier = CarrierIdentifier(kind=IdentifierKind.DOT, number=carrier.dot_number)

    result = await verify_carrier(fmcsa, identifier)

    if result.status is VerificationStatus.UNAVAILABLE and (
        result.unavailable_reason in QUEUED_REASONS
    ):
        log.info("carrier.verification_over_budget", carrier_id=str(carrier_id))
        return VerificationOutcome(
            carrier_id=carrier_id,
            status=CarrierStatus.UNAVAILABLE,
            changes=[],
            recorded=False,
            retry_in_s=float(parse_limit(settings.fmcsa_call_budget).get_expiry()),
        )

    now = datetime.now(UTC)
    async with unit_of_work(sessionmaker) as session:
        carrier = await repository.get(session, carrier_id, for_update=True)
        if carrier is None:
            return None
        changes = await record_result(
            session, carrier, result, now=now, next_at=_next_check(settings, now)
        )
    status = CarrierStatus.from_fmcsa(result.status)
    return VerificationOutcome(
        carrier_id=carrier_id,
        status=status,
        changes=changes,
        recorded=True,
        retry_in_s=settings.fmcsa_breaker_reset_s if status is CarrierStatus.UNAVAILABLE else None,
    )


def _next_check(settings: Settings, now: datetime) -> datetime:
    return now + timedelta(days=settings.carriers_reverify_interval_days)


async def record_result(
    session: AsyncSession,
    carrier: Carrier,
    result: FmcsaVerification,
    *,
    now: datetime,
    next_at: datetime,
) -> list[Change]:
    """Apply an FMCSA verification to ``carrier``, keep its history, notify changes."""
    carrier.last_checked_at = now
    carrier.next_verification_at = next_at

    if result.status is VerificationStatus.UNAVAILABLE:
        carrier.verification_status = CarrierStatus.UNAVAILABLE
        carrier.unavailable_reason = result.unavailable_reason
        if carrier.last_verified_at is None and result.carrier is not None and result.fetched_at:
            # First check, FMCSA down, but an older cached reply exists: keep it as
            # the last known result, with its real age.
            _copy_facts(carrier, result.carrier)
            if result.last_known_status is not None:
                carrier.last_result_status = CarrierStatus.from_fmcsa(result.last_known_status)
            carrier.last_verified_at = result.fetched_at
        changes: list[Change] = []
    else:
        status = CarrierStatus.from_fmcsa(result.status)
        had_result = carrier.last_result_status is not None
        changes = _changes(carrier, result.carrier, status) if had_result else []
        if result.carrier is not None:
            _copy_facts(carrier, result.carrier)
            reinstated = _reinstatement(carrier, result.carrier, result.fetched_at or now)
            if reinstated is not None:
                changes.append(reinstated)
        carrier.verification_status = status
        carrier.last_result_status = status
        carrier.verification_reasons = [reason.model_dump() for reason in result.reasons]
        carrier.last_verified_at = result.fetched_at or now
        carrier.unavailable_reason = None

    history = CarrierVerification(
        carrier_id=carrier.id,
        source=VerificationSource.FMCSA,
        status=carrier.verification_status,
        reasons=[reason.model_dump() for reason in result.reasons],
        changes=[change.as_json() for change in changes],
        fetched_at=result.fetched_at,
        checked_at=now,
    )
    session.add(history)
    await session.flush()

    if changes:
        log.warning(
            "carrier.facts_changed",
            carrier_id=str(carrier.id),
            changes=[change.kind for change in changes],
        )
        await notify(
            session,
            [
                Notice(
                    organization_id=carrier.organization_id,
                    carrier_id=carrier.id,
                    kind=NotificationKind.CARRIER_STATUS_CHANGED,
                    dedupe_key=f"verification:{history.id}",
                    message="FMCSA shows changes to your carrier record: "
                    + ", ".join(change.kind.replace("_", " ") for change in changes)
                    + ".",
                    details={"changes": [change.as_json() for change in changes]},
                )
            ],
        )
    log.info(
        "carrier.verification_recorded",
        carrier_id=str(carrier.id),
        status=carrier.verification_status.value,
        from_cache=result.from_cache,
    )
    return changes


def _reinstatement(carrier: Carrier, record: CarrierRecord, fetched_at: datetime) -> Change | None:
    """Clear a revocation flag that FMCSA no longer supports (authority active since)."""
    revoked = carrier.revoked_effective_date
    active = "A" in (record.common_authority_status, record.contract_authority_status)
    if revoked is None or not active or record.allowed_to_operate is not Flag.YES:
        return None
    if fetched_at.date() < revoked:
        return None
    carrier.revoked_effective_date = None
    carrier.revocation_type = None
    return Change("authority_reinstated", "revokedEffectiveDate", revoked.isoformat(), None)


def _copy_facts(carrier: Carrier, record: CarrierRecord) -> None:
    carrier.legal_name = record.legal_name
    carrier.dba_name = record.dba_name
    carrier.common_authority_status = record.common_authority_status
    carrier.contract_authority_status = record.contract_authority_status
    carrier.broker_authority_status = record.broker_authority_status
    carrier.allowed_to_operate = record.allowed_to_operate.value
    carrier.out_of_service_date = record.oos_date
    carrier.bipd_insurance_required = record.bipd_insurance_required.value
    carrier.bipd_required_cents = record.bipd_required_amount_cents
    carrier.bipd_on_file_cents = record.bipd_insurance_on_file_cents
    carrier.cargo_on_file_cents = record.cargo_insurance_on_file_cents
    carrier.safety_rating = record.safety_rating


def _changes(carrier: Carrier, record: CarrierRecord | None, status: CarrierStatus) -> list[Change]:
    changes: list[Change] = []
    if carrier.last_result_status is not None and carrier.last_result_status is not status:
        changes.append(
            Change("status_changed", "verificationStatus", carrier.last_result_status.value, status)
        )
    if record is None:
        return changes

    for field, before, after in (
        ("commonAuthorityStatus", carrier.common_authority_status, record.common_authority_status),
        (
            "contractAuthorityStatus",
            carrier.contract_authority_status,
            record.contract_authority_status,
        ),
    ):
        if before == "A" and after != "A":
            changes.append(Change("authority_revoked", field, before, after))
    if carrier.allowed_to_operate == Flag.YES.value and record.allowed_to_operate is not Flag.YES:
        changes.append(
            Change(
                "operation_not_allowed",
                "allowedToOperate",
                carrier.allowed_to_operate,
                record.allowed_to_operate.value,
            )
        )
    if carrier.out_of_service_date is None and record.oos_date is not None:
        changes.append(Change("out_of_service", "oosDate", None, record.oos_date.isoformat()))
    before_cents = carrier.bipd_on_file_cents
    after_cents = record.bipd_insurance_on_file_cents
    if before_cents and (after_cents is None or after_cents < before_cents):
        changes.append(
            Change("insurance_dropped", "bipdInsuranceOnFile", before_cents, after_cents)
        )
    return changes

"""The double-brokering check's findings: fraud flags on a load and its carrier.

A load is double-brokered when the carrier it was assigned to hands it to
another carrier. The platform's evidence that the assigned carrier hauls it
is the assigned driver's own phone dwelling at the pickup inside the pickup
window (see :class:`~superior_one.tracking.rules.PickupProofRules`). Three
things raise a flag, each visible to the load's shipper:

- fixes for the load from anyone but its driver or its carrier's dispatchers
  (checked at ingest, answered 403);
- the truck leaving pickup, or reaching delivery, without a proven pickup
  (checked by the gps-consumer; the load does not move to IN_TRANSIT);
- a person moving the load past pickup while no proven pickup exists
  (checked after the loads service's manual transitions).

Flags are recorded, never enforced beyond that: a person decides.
"""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.auth.principal import Principal
from superior_one.loads.models import Load, LoadStatus
from superior_one.observability.metrics import FRAUD_FLAGS
from superior_one.tracking.models import FraudReason
from superior_one.tracking.repository import LoadFacts, TrackingRepository

log = structlog.get_logger(__name__)

# Every reason exported at 0 from the start: a labelled series that appears with its
# first flag shows no increase() for it (observability/metrics.py, PAYMENTS).
for _reason in FraudReason:
    FRAUD_FLAGS.labels(_reason.value)

PAST_PICKUP = frozenset({LoadStatus.IN_TRANSIT, LoadStatus.DELIVERED, LoadStatus.COMPLETED})


async def raise_flag(
    repository: TrackingRepository,
    *,
    load_id: uuid.UUID,
    shipper_organization_id: uuid.UUID,
    carrier_organization_id: uuid.UUID | None,
    reason: FraudReason,
    detail: str,
    actor_user_id: uuid.UUID | None = None,
    actor_organization_id: uuid.UUID | None = None,
    gps_fix_id: int | None = None,
) -> int:
    flag_id, occurrences = await repository.raise_flag(
        load_id=load_id,
        shipper_organization_id=shipper_organization_id,
        carrier_organization_id=carrier_organization_id,
        reason=reason,
        detail=detail,
        actor_user_id=actor_user_id,
        actor_organization_id=actor_organization_id,
        gps_fix_id=gps_fix_id,
    )
    FRAUD_FLAGS.labels(reason.value).inc()
    log.warning(
        "tracking.fraud_flag_raised",
        flag_id=flag_id,
        load_id=str(load_id),
        carrier_organization_id=str(carrier_organization_id) if carrier_organization_id else None,
        reason=reason.value,
        occurrences=occurrences,
        actor_user_id=str(actor_user_id) if actor_user_id else None,
        gps_fix_id=gps_fix_id,
    )
    return flag_id


async def flag_unauthorized_sender(
    repository: TrackingRepository, facts: LoadFacts, principal: Principal
) -> int:
    return await raise_flag(
        repository,
        load_id=facts.id,
        shipper_organization_id=facts.shipper_organization_id,
        carrier_organization_id=facts.carrier_organization_id,
        reason=FraudReason.UNAUTHORIZED_SENDER,
        detail=(
            f"GPS fixes for this load were sent by user {principal.user_id} "
            f"({principal.organization_type.value.lower()} {principal.role.value}), who is "
            "neither its assigned driver nor a dispatcher of its assigned carrier."
        ),
        actor_user_id=principal.user_id,
        actor_organization_id=principal.organization_id,
    )


async def check_manual_transition(
    session: AsyncSession, load: Load, to_status: LoadStatus, principal: Principal
) -> None:
    """After a person moved ``load`` to ``to_status``: flag it when that is past
    pickup and the assigned driver's dwell at pickup was never proven.

    The loads service calls this after each manual transition (see
    ``LoadService.after_manual_transition``); it never blocks the change.
    """
    if to_status not in PAST_PICKUP:
        return
    repository = TrackingRepository(session)
    if await repository.pickup_proven_at(load.id) is not None:
        return
    await raise_flag(
        repository,
        load_id=load.id,
        shipper_organization_id=load.shipper_organization_id,
        carrier_organization_id=load.assigned_carrier_organization_id,
        reason=FraudReason.MANUAL_STATUS_WITHOUT_PROOF,
        detail=(
            f"Moved to {to_status.value} by user {principal.user_id} while no GPS proof "
            "exists that the assigned driver dwelt at the pickup within its window."
        ),
        actor_user_id=principal.user_id,
        actor_organization_id=principal.organization_id,
    )

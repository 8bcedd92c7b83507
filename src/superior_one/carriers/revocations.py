"""Import of FMCSA's daily revocation file: flag the carriers it revokes.

Rows are matched to our carriers by USDOT number, or by MC docket number when
the row has no USDOT number. The file lists past revocations too, so a flag
only blocks loads until FMCSA shows the authority active again: each flagged
carrier is re-verified, and a verification with active authority after the
revocation date clears the flag. Importing the same file again changes
nothing and notifies no one twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.carriers import repository
from superior_one.carriers.models import (
    Carrier,
    CarrierVerification,
    NotificationKind,
    VerificationSource,
)
from superior_one.carriers.notifications import Notice, notify
from superior_one.integrations.fmcsa.revocations import (
    DocketPrefix,
    RevocationLineError,
    RevocationRow,
)
from superior_one.jobs import Queue, defer_many

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ImportReport:
    rows: int
    bad_lines: int
    matched_carriers: int
    newly_flagged: int


async def import_revocations(
    session: AsyncSession, lines: Iterable[RevocationRow | RevocationLineError]
) -> ImportReport:
    rows: list[RevocationRow] = []
    bad_lines = 0
    for item in lines:
        if isinstance(item, RevocationLineError):
            bad_lines += 1
            log.warning("carrier.revocation_line_invalid", line=item.line, error=item.message)
        else:
            rows.append(item)

    # The file repeats a carrier once per revocation over the years; the latest counts.
    by_dot: dict[int, RevocationRow] = {}
    by_mc: dict[int, RevocationRow] = {}
    for row in sorted(rows, key=lambda r: r.effective_date or date.min):
        if row.dot_number is not None:
            by_dot[row.dot_number] = row
        elif row.docket_prefix is DocketPrefix.MC:
            by_mc[row.docket_number] = row
    carriers = await repository.carriers_matching_dockets(session, by_dot, by_mc)

    flagged: list[Carrier] = []
    notices: list[Notice] = []
    now = datetime.now(UTC)
    for carrier in carriers:
        found = by_dot.get(carrier.dot_number) or by_mc.get(carrier.mc_number or -1)
        if found is None or found.effective_date is None:
            continue
        row, effective = found, found.effective_date
        if carrier.revoked_effective_date == effective:
            continue
        change = {
            "kind": "authority_revoked",
            "field": "revokedEffectiveDate",
            "from": carrier.revoked_effective_date.isoformat()
            if carrier.revoked_effective_date
            else None,
            "to": effective.isoformat(),
        }
        carrier.revoked_effective_date = effective
        carrier.revocation_type = row.revocation_type.value
        session.add(
            CarrierVerification(
                carrier_id=carrier.id,
                source=VerificationSource.REVOCATION_FILE,
                status=carrier.verification_status,
                reasons=[
                    {
                        "field": "revocation",
                        "value": f"{row.docket} {row.authority_type or ''}".strip(),
                        "message": f"{row.revocation_type.value} effective {effective.isoformat()}",
                    }
                ],
                changes=[change],
                checked_at=now,
            )
        )
        notices.append(
            Notice(
                organization_id=carrier.organization_id,
                carrier_id=carrier.id,
                kind=NotificationKind.AUTHORITY_REVOKED,
                dedupe_key=f"revocation:{carrier.id}:{row.docket}:{effective.isoformat()}",
                message=f"FMCSA lists an {row.revocation_type.value.lower()} of docket "
                f"{row.docket}, effective {effective.isoformat()}. Loads picked up "
                "from that date cannot be assigned to you.",
                details={"docket": row.docket, "effectiveDate": effective.isoformat()},
            )
        )
        flagged.append(carrier)
        log.warning(
            "carrier.authority_revoked",
            carrier_id=str(carrier.id),
            docket=row.docket,
            effective_date=effective.isoformat(),
        )

    await session.flush()
    await notify(session, notices)

    from superior_one.carriers.tasks import verify

    # FMCSA's own record confirms (or corrects) the file at the next free slot.
    await defer_many(
        session,
        verify,
        [{"carrier_id": str(carrier.id)} for carrier in flagged],
        queue=Queue.VERIFICATION.value,
    )
    return ImportReport(
        rows=len(rows),
        bad_lines=bad_lines,
        matched_carriers=len(carriers),
        newly_flagged=len(flagged),
    )

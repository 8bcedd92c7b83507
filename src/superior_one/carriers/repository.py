"""Queries of the carriers domain."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.carriers.models import Carrier, InsurancePolicy


async def get(
    session: AsyncSession, carrier_id: uuid.UUID, *, for_update: bool = False
) -> Carrier | None:
    statement = select(Carrier).where(Carrier.id == carrier_id)
    if for_update:
        statement = statement.with_for_update()
    carrier: Carrier | None = (await session.execute(statement)).scalar_one_or_none()
    return carrier


async def get_by_organization(session: AsyncSession, organization_id: uuid.UUID) -> Carrier | None:
    carrier: Carrier | None = (
        await session.execute(select(Carrier).where(Carrier.organization_id == organization_id))
    ).scalar_one_or_none()
    return carrier


async def policies(session: AsyncSession, carrier_id: uuid.UUID) -> list[InsurancePolicy]:
    rows = await session.execute(
        select(InsurancePolicy)
        .where(InsurancePolicy.carrier_id == carrier_id)
        .order_by(InsurancePolicy.expiry_date.desc(), InsurancePolicy.id)
    )
    return list(rows.scalars())


async def carriers_matching_dockets(
    session: AsyncSession, dot_numbers: Iterable[int], mc_numbers: Iterable[int]
) -> list[Carrier]:
    dots, mcs = sorted(set(dot_numbers)), sorted(set(mc_numbers))
    rows = await session.execute(
        select(Carrier).where(or_(Carrier.dot_number.in_(dots), Carrier.mc_number.in_(mcs)))
    )
    return list(rows.scalars())


async def batch_boundaries(
    session: AsyncSession, batch_size: int
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Split active carriers, ordered by id, into id ranges of ``batch_size`` carriers.

    PostgreSQL 15 has no min()/max() over uuid, hence the first element of a sorted array.
    """
    rows = await session.execute(
        text(
            """
            SELECT (array_agg(id ORDER BY id))[1] AS first_id,
                   (array_agg(id ORDER BY id DESC))[1] AS last_id
              FROM (SELECT id, (row_number() OVER (ORDER BY id) - 1) / :size AS batch
                      FROM carriers WHERE is_active) AS numbered
             GROUP BY batch ORDER BY batch
            """
        ),
        {"size": batch_size},
    )
    return [(row.first_id, row.last_id) for row in rows]


async def claim_due_for_verification(
    session: AsyncSession, *, now: datetime, limit: int, next_at: datetime
) -> list[uuid.UUID]:
    """Take up to ``limit`` active carriers due for re-verification, moving their due date.

    Moving the due date in the same statement means a later tick (or another
    worker) does not take the same carriers again.
    """
    due = (
        select(Carrier.id)
        .where(Carrier.is_active, Carrier.next_verification_at <= now)
        .order_by(Carrier.next_verification_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    rows = await session.execute(
        update(Carrier)
        .where(Carrier.id.in_(due))
        .values(next_verification_at=next_at)
        .returning(Carrier.id)
    )
    return list(rows.scalars())


async def active_count(session: AsyncSession) -> int:
    count: int = (
        await session.execute(select(func.count()).select_from(Carrier).where(Carrier.is_active))
    ).scalar_one()
    return count


async def insurance_coverage_in_range(
    session: AsyncSession, first_id: uuid.UUID, last_id: uuid.UUID
) -> Sequence[Row[Any]]:
    """Per active carrier in the id range: the last day its auto liability cover runs to."""
    rows = await session.execute(
        text(
            """
            SELECT c.id, c.organization_id, max(p.expiry_date) AS covered_until,
                   c.booking_suspended_at, c.booking_suspension_reason
              FROM carriers AS c
              LEFT JOIN insurance_policies AS p
                ON p.carrier_id = c.id AND p.coverage_type = 'AUTO_LIABILITY'
             WHERE c.id BETWEEN :first_id AND :last_id AND c.is_active
             GROUP BY c.id
            """
        ),
        {"first_id": first_id, "last_id": last_id},
    )
    return rows.all()

"""Daily carrier performance scores from the loads they hauled.

Over a trailing window of pickups, per carrier: on-time pickup and delivery
(the first IN_TRANSIT and DELIVERED events against the stop windows' ends),
cancellations it caused (CANCELLED events it made), median response time
(interest expressed after the load was posted) and the double-brokering
check's fraud flags. The score is out of 100.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.carriers.models import CarrierScore

WINDOW_DAYS = 90
# Weights of the score's parts; they sum to 100.
WEIGHT_ON_TIME_DELIVERY = 40
WEIGHT_ON_TIME_PICKUP = 30
WEIGHT_RELIABILITY = 15
WEIGHT_RESPONSE = 15
# Interest within FAST_RESPONSE_S earns the full response part, and SLOW_RESPONSE_S or later none.
FAST_RESPONSE_S = 15 * 60
SLOW_RESPONSE_S = 24 * 3600
POINTS_PER_FRAUD_FLAG = 25


@dataclass(frozen=True, slots=True)
class CarrierActivity:
    carrier_id: uuid.UUID
    loads: int
    picked_up: int
    on_time_pickups: int
    delivered: int
    on_time_deliveries: int
    cancellations: int
    median_response_s: float | None
    fraud_flags: int


ACTIVITY_QUERY = text(
    """
    WITH batch AS (
        SELECT id AS carrier_id, organization_id FROM carriers
         WHERE id BETWEEN :first_id AND :last_id AND is_active
    ), hauled AS (
        SELECT b.carrier_id, l.id AS load_id, l.pickup_window_end, l.delivery_window_end,
               (SELECT min(e.occurred_at) FROM load_events AS e
                 WHERE e.load_id = l.id AND e.to_status = 'IN_TRANSIT') AS picked_up_at,
               (SELECT min(e.occurred_at) FROM load_events AS e
                 WHERE e.load_id = l.id AND e.to_status = 'DELIVERED') AS delivered_at
          FROM batch AS b
          JOIN loads AS l ON l.assigned_carrier_organization_id = b.organization_id
         WHERE l.pickup_window_start >= :since
    ), hauling AS (
        SELECT carrier_id,
               count(*) AS loads,
               count(picked_up_at) AS picked_up,
               count(*) FILTER (WHERE picked_up_at <= pickup_window_end) AS on_time_pickups,
               count(delivered_at) AS delivered,
               count(*) FILTER (WHERE delivered_at <= delivery_window_end) AS on_time_deliveries
          FROM hauled GROUP BY carrier_id
    ), cancelled AS (
        SELECT b.carrier_id, count(*) AS cancellations
          FROM batch AS b
          JOIN load_events AS e ON e.actor_organization_id = b.organization_id
         WHERE e.to_status = 'CANCELLED' AND e.occurred_at >= :since
         GROUP BY b.carrier_id
    ), responses AS (
        SELECT b.carrier_id,
               percentile_cont(0.5) WITHIN GROUP (
                   ORDER BY extract(epoch FROM i.created_at - l.posted_at)) AS median_response_s
          FROM batch AS b
          JOIN load_interests AS i ON i.carrier_organization_id = b.organization_id
          JOIN loads AS l ON l.id = i.load_id
         WHERE i.created_at >= :since AND l.posted_at IS NOT NULL
         GROUP BY b.carrier_id
    ), flagged AS (
        SELECT b.carrier_id, count(*) AS fraud_flags
          FROM batch AS b
          JOIN fraud_flags AS f ON f.carrier_organization_id = b.organization_id
         WHERE f.first_seen_at >= :since
         GROUP BY b.carrier_id
    )
    SELECT b.carrier_id,
           coalesce(h.loads, 0) AS loads, coalesce(h.picked_up, 0) AS picked_up,
           coalesce(h.on_time_pickups, 0) AS on_time_pickups,
           coalesce(h.delivered, 0) AS delivered,
           coalesce(h.on_time_deliveries, 0) AS on_time_deliveries,
           coalesce(c.cancellations, 0) AS cancellations,
           r.median_response_s,
           coalesce(f.fraud_flags, 0) AS fraud_flags
      FROM batch AS b
      LEFT JOIN hauling AS h ON h.carrier_id = b.carrier_id
      LEFT JOIN cancelled AS c ON c.carrier_id = b.carrier_id
      LEFT JOIN responses AS r ON r.carrier_id = b.carrier_id
      LEFT JOIN flagged AS f ON f.carrier_id = b.carrier_id
    """
)


async def carrier_activity(
    session: AsyncSession, *, first_id: uuid.UUID, last_id: uuid.UUID, since: datetime
) -> list[CarrierActivity]:
    rows = await session.execute(
        ACTIVITY_QUERY, {"first_id": first_id, "last_id": last_id, "since": since}
    )
    return [
        CarrierActivity(
            carrier_id=row.carrier_id,
            loads=row.loads,
            picked_up=row.picked_up,
            on_time_pickups=row.on_time_pickups,
            delivered=row.delivered,
            on_time_deliveries=row.on_time_deliveries,
            cancellations=row.cancellations,
            median_response_s=None
            if row.median_response_s is None
            else float(row.median_response_s),
            fraud_flags=row.fraud_flags,
        )
        for row in rows
    ]


def _rate(part: int, whole: int) -> Decimal | None:
    return None if whole == 0 else (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"))


def score(activity: CarrierActivity) -> Decimal:
    """Score out of 100; a part with no data counts as full marks (new carriers start clean)."""
    pickup = _rate(activity.on_time_pickups, activity.picked_up)
    delivery = _rate(activity.on_time_deliveries, activity.delivered)
    handled = activity.loads + activity.cancellations
    reliability = Decimal(1) - (_rate(activity.cancellations, handled) or Decimal(0))
    if activity.median_response_s is None:
        response = Decimal(1)
    else:
        late = min(max(activity.median_response_s - FAST_RESPONSE_S, 0), SLOW_RESPONSE_S)
        response = Decimal(1) - Decimal(late) / Decimal(SLOW_RESPONSE_S - FAST_RESPONSE_S)
        response = max(response, Decimal(0))
    total = (
        WEIGHT_ON_TIME_DELIVERY * (delivery if delivery is not None else Decimal(1))
        + WEIGHT_ON_TIME_PICKUP * (pickup if pickup is not None else Decimal(1))
        + WEIGHT_RELIABILITY * reliability
        + WEIGHT_RESPONSE * response
        - POINTS_PER_FRAUD_FLAG * activity.fraud_flags
    )
    return max(Decimal(0), min(Decimal(100), total)).quantize(Decimal("0.01"))


async def score_batch(
    session: AsyncSession,
    *,
    first_id: uuid.UUID,
    last_id: uuid.UUID,
    computed_on: date,
    now: datetime,
) -> int:
    """Compute and store today's scores for a batch of carriers; repeating it overwrites."""
    activities = await carrier_activity(
        session, first_id=first_id, last_id=last_id, since=now - timedelta(days=WINDOW_DAYS)
    )
    if not activities:
        return 0
    values = [
        {
            "carrier_id": a.carrier_id,
            "computed_on": computed_on,
            "loads_considered": a.loads,
            "on_time_pickup_rate": _rate(a.on_time_pickups, a.picked_up),
            "on_time_delivery_rate": _rate(a.on_time_deliveries, a.delivered),
            "cancellations": a.cancellations,
            "median_response_s": None
            if a.median_response_s is None
            else round(a.median_response_s),
            "fraud_flags": a.fraud_flags,
            "score": score(a),
        }
        for a in activities
    ]
    statement = insert(CarrierScore).values(values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[CarrierScore.carrier_id, CarrierScore.computed_on],
            set_={
                column: statement.excluded[column]
                for column in values[0]
                if column not in {"carrier_id", "computed_on"}
            },
        )
    )
    return len(values)

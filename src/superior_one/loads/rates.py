"""How a load's rate becomes its gross revenue, in integer cents.

``gross = rate x quantity`` where the quantity is 1 (FLAT), the load's miles
(PER_MILE) or its ``units`` (tons, hours or units for PER_TON, PER_HOUR,
PER_UNIT). The product is computed exactly in Decimal and rounded to whole
cents half-up, the same rule as :mod:`superior_one.payments.money`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from superior_one.loads.models import RateMode

QUANTITY_MODES = frozenset({RateMode.PER_TON, RateMode.PER_HOUR, RateMode.PER_UNIT})


def gross_revenue_cents(
    rate_cents: int, mode: RateMode, *, miles: Decimal, units: Decimal | None
) -> int:
    """Return the load's total pay in cents for its rate, mode and quantity."""
    if mode is RateMode.FLAT:
        quantity = Decimal(1)
    elif mode is RateMode.PER_MILE:
        quantity = miles
    else:
        if units is None:
            raise ValueError(f"rate mode {mode} needs units")
        quantity = units
    return int((Decimal(rate_cents) * quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def rate_per_mile_cents(gross_cents: int, miles: Decimal) -> int:
    """Return the pay per loaded mile in cents; mirrors the generated column in the table."""
    per_mile = Decimal(gross_cents) / max(miles, Decimal(1))
    return int(per_mile.quantize(Decimal(1), rounding=ROUND_HALF_UP))

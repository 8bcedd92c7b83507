"""Gross revenue from rate, mode and quantity, in integer cents rounded half-up."""

from __future__ import annotations

from decimal import Decimal

import pytest

from superior_one.loads.models import RateMode
from superior_one.loads.rates import gross_revenue_cents, rate_per_mile_cents


@pytest.mark.parametrize(
    ("rate", "mode", "miles", "units", "gross"),
    [
        (150_000, RateMode.FLAT, "120.0", None, 150_000),
        (285, RateMode.PER_MILE, "174.3", None, 49_676),  # 49,675.5 rounds up
        (1850, RateMode.PER_TON, "34.2", "22.00", 40_700),
        (12_500, RateMode.PER_HOUR, "20.0", "6.5", 81_250),
        (19_716, RateMode.PER_UNIT, "453.7", "4", 78_864),
    ],
)
def test_rates_gross_revenue(
    rate: int, mode: RateMode, miles: str, units: str | None, gross: int
) -> None:
    quantity = Decimal(units) if units is not None else None
    assert gross_revenue_cents(rate, mode, miles=Decimal(miles), units=quantity) == gross


def test_rates_quantity_mode_without_units_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs units"):
        gross_revenue_cents(1000, RateMode.PER_TON, miles=Decimal(10), units=None)


def test_rates_per_mile_treats_short_trips_as_one_mile() -> None:
    assert rate_per_mile_cents(50_000, Decimal("0.4")) == 50_000

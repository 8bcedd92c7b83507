"""Money parsing and the platform fee split (3 %, rounded half-up)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from superior_one.payments.money import (
    InvalidAmountError,
    format_cents,
    parse_amount_cents,
    split_platform_fee,
)

THREE_PERCENT = Decimal("3")

# (invoice total as typed, cents, fee cents, payout cents)
FEE_CASES = [
    ("1234.56", 123456, 3704, 119752),  # exact fee 3703.68
    ("1233.50", 123350, 3701, 119649),  # exact fee 3700.5: half-up, not half-even
    ("1.50", 150, 5, 145),  # exact fee 4.5
    ("19.99", 1999, 60, 1939),  # int(19.99 * 100) would give 1998
]


@pytest.mark.parametrize(("total", "cents", "fee", "payout"), FEE_CASES)
def test_parse_amount_cents_invoice_totals(total: str, cents: int, fee: int, payout: int) -> None:
    assert parse_amount_cents(total) == cents


@pytest.mark.parametrize(("total", "cents", "fee", "payout"), FEE_CASES)
def test_split_platform_fee_invoice_totals(total: str, cents: int, fee: int, payout: int) -> None:
    split = split_platform_fee(cents, THREE_PERCENT)

    assert split.fee_cents == fee
    assert split.payout_cents == payout
    assert split.fee_cents + split.payout_cents == split.gross_cents
    assert isinstance(split.fee_cents, int)
    assert split.fee_cents < split.gross_cents


def test_split_platform_fee_tie_rounds_half_up() -> None:
    # 123350 * 3 % = 3700.5; round() would give 3700 (ties to even).
    assert round(Decimal("3700.5")) == 3700
    assert split_platform_fee(123350, THREE_PERCENT).fee_cents == 3701


def test_parse_amount_cents_three_decimals_rejected() -> None:
    with pytest.raises(InvalidAmountError) as excinfo:
        parse_amount_cents("1234.565")

    assert excinfo.value.status == 422
    assert "'1234.565'" in excinfo.value.detail
    assert "2 decimal places" in excinfo.value.detail


def test_invalid_amount_error_is_value_error_for_pydantic() -> None:
    assert issubclass(InvalidAmountError, ValueError)


@pytest.mark.parametrize(
    ("value", "cents"),
    [
        ("0", 0),
        ("7", 700),
        ("0.5", 50),
        (" 12.30 ", 1230),
        ("1234.560", 123456),  # trailing zero: still whole cents
        (Decimal("19.99"), 1999),
        (19.99, 1999),  # a JSON number, read through its shortest repr
        (1234, 123400),
    ],
)
def test_parse_amount_cents_accepted_forms(value: str | Decimal | float | int, cents: int) -> None:
    assert parse_amount_cents(value) == cents


@pytest.mark.parametrize(
    "value",
    [
        "1234.565",
        "0.001",
        "-1.00",
        "1e3",
        "1,234.56",
        "$12",
        "",
        "12.",
        ".5",
        "NaN",
        0.1 + 0.2,  # 0.30000000000000004
        Decimal("Infinity"),
        Decimal("-0.01"),
        True,
    ],
)
def test_parse_amount_cents_rejected_forms(value: str | Decimal | float | bool) -> None:
    with pytest.raises(InvalidAmountError):
        parse_amount_cents(value)


def test_parse_amount_cents_error_names_value() -> None:
    with pytest.raises(InvalidAmountError) as excinfo:
        parse_amount_cents("1,234.56")

    assert "'1,234.56'" in excinfo.value.detail


@pytest.mark.parametrize(
    ("cents", "text"), [(123456, "1234.56"), (5, "0.05"), (0, "0.00"), (-150, "-1.50")]
)
def test_format_cents_text(cents: int, text: str) -> None:
    assert format_cents(cents) == text


def test_split_platform_fee_rejects_float_percent() -> None:
    with pytest.raises(TypeError):
        split_platform_fee(1000, 3.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("percent", [Decimal("-1"), Decimal("100"), Decimal("NaN")])
def test_split_platform_fee_rejects_percent_out_of_range(percent: Decimal) -> None:
    with pytest.raises(ValueError, match="fee_percent"):
        split_platform_fee(1000, percent)


def test_split_platform_fee_rejects_negative_gross() -> None:
    with pytest.raises(ValueError, match="gross_cents"):
        split_platform_fee(-1, THREE_PERCENT)


@given(
    gross=st.integers(min_value=0, max_value=10**12),
    percent=st.decimals(min_value=0, max_value="99.99", places=2, allow_nan=False),
)
def test_split_platform_fee_parts_sum_to_gross(gross: int, percent: Decimal) -> None:
    split = split_platform_fee(gross, percent)

    assert split.fee_cents + split.payout_cents == gross
    assert 0 <= split.fee_cents <= gross
    # Half-up: the fee is within half a cent of the exact value.
    assert abs(Decimal(split.fee_cents) - Decimal(gross) * percent / 100) <= Decimal("0.5")

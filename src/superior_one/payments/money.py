"""Money in integer cents, and the one rounding rule for the platform fee.

Amounts are held as ``int`` cents from the API to the database to the provider.
Decimal is used only to compute a percentage and to parse decimal text; floats
never take part in arithmetic.

Rounding rule (the only one in the code base): the platform fee is
``gross_cents * percent / 100`` computed exactly in Decimal, then rounded to
whole cents with ``ROUND_HALF_UP`` (a tie such as 3700.5 becomes 3701). The
carrier payout is ``gross - fee``, so fee plus payout always equals the gross.
Python's ``round()`` rounds ties to even and would give 3700; do not use it
for money.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final

from superior_one.errors import UnprocessableError

CENTS_PER_UNIT: Final = 100
FEE_ROUNDING: Final = ROUND_HALF_UP

# Plain decimal text: digits with an optional fraction. Signs, exponents,
# thousands separators and currency symbols are rejected, not guessed at.
_DECIMAL_TEXT = re.compile(r"\d+(?:\.\d+)?")


class InvalidAmountError(UnprocessableError, ValueError):
    """A money amount that is not a non-negative whole number of cents.

    It is also a ``ValueError``, so Pydantic validators that call the parser
    report it as a field validation error.
    """

    code = "invalid_amount"
    title = "Invalid amount"


@dataclass(frozen=True, slots=True)
class FeeSplit:
    """A gross amount divided into the platform fee and the carrier payout, in cents."""

    gross_cents: int
    fee_cents: int
    payout_cents: int


def parse_amount_cents(value: str | Decimal | int | float) -> int:
    """Convert a decimal amount in currency units (``"1234.56"``) to integer cents.

    Raise :class:`InvalidAmountError` for more than 2 significant decimal places,
    negative, non-finite or malformed values. A float is read through its
    shortest ``repr`` (a JSON number ``19.99`` becomes ``Decimal("19.99")``),
    so the binary rounding error of ``19.99 * 100`` never reaches the result.
    """
    if isinstance(value, bool):
        raise InvalidAmountError(
            f"Amount {value!r} is not a number; send a decimal such as '19.99'."
        )

    if isinstance(value, str):
        text = value.strip()
        if not _DECIMAL_TEXT.fullmatch(text):
            raise InvalidAmountError(
                f"Amount {value!r} is not a plain decimal number; send digits with an "
                "optional '.' and at most 2 decimal places, such as '1234.56'."
            )
        amount = Decimal(text)
    elif isinstance(value, float):
        amount = Decimal(repr(value))
    elif isinstance(value, int):
        amount = Decimal(value)
    else:
        amount = value

    if not amount.is_finite():
        raise InvalidAmountError(f"Amount {value!r} is not a finite number.")
    if amount < 0:
        raise InvalidAmountError(f"Amount {value!r} is negative; amounts must be 0 or more.")

    cents = amount * CENTS_PER_UNIT
    if cents != cents.to_integral_value():
        raise InvalidAmountError(
            f"Amount {value!r} has more than 2 decimal places; amounts are whole cents, "
            "so send at most 2 decimal places."
        )
    return int(cents)


def format_cents(cents: int) -> str:
    """Format integer cents as decimal text in currency units: ``123456`` -> ``"1234.56"``."""
    sign = "-" if cents < 0 else ""
    units, remainder = divmod(abs(cents), CENTS_PER_UNIT)
    return f"{sign}{units}.{remainder:02d}"


def split_platform_fee(gross_cents: int, fee_percent: Decimal) -> FeeSplit:
    """Split ``gross_cents`` into the platform fee and the carrier payout.

    The fee is ``gross_cents * fee_percent / 100`` rounded half-up to whole
    cents (see the module docstring); the payout is the rest, so
    ``fee_cents + payout_cents == gross_cents`` always holds.
    """
    if isinstance(gross_cents, bool) or not isinstance(gross_cents, int):
        raise TypeError(f"gross_cents must be int cents, got {type(gross_cents).__name__}")
    if gross_cents < 0:
        raise ValueError(f"gross_cents must be 0 or more, got {gross_cents}")
    # A float percentage such as 3.3 would carry its binary error into Decimal.
    if not isinstance(fee_percent, Decimal):
        raise TypeError(f"fee_percent must be a Decimal, got {type(fee_percent).__name__}")
    if not fee_percent.is_finite() or not (0 <= fee_percent < 100):
        raise ValueError(f"fee_percent must be at least 0 and below 100, got {fee_percent}")

    exact_fee = Decimal(gross_cents) * fee_percent / 100
    try:
        fee_cents = int(exact_fee.quantize(Decimal(1), rounding=FEE_ROUNDING))
    except InvalidOperation as exc:  # only for amounts beyond the Decimal context's precision
        raise ValueError(f"gross_cents {gross_cents} is too large to split exactly") from exc

    return FeeSplit(
        gross_cents=gross_cents, fee_cents=fee_cents, payout_cents=gross_cents - fee_cents
    )

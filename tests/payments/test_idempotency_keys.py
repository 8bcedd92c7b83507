"""Idempotency keys derived from the business operation."""

from __future__ import annotations

import pytest

from superior_one.payments.provider import (
    account_idempotency_key,
    charge_idempotency_key,
    confirm_idempotency_key,
    operation_key,
    refund_idempotency_key,
    transfer_idempotency_key,
)


def test_charge_idempotency_key_format() -> None:
    assert charge_idempotency_key("INV-1001", 1) == "inv:INV-1001:charge:1"


def test_charge_idempotency_key_stable_across_calls() -> None:
    assert charge_idempotency_key("INV-1001", 1) == charge_idempotency_key("INV-1001", 1)


def test_charge_idempotency_key_differs_per_attempt() -> None:
    assert charge_idempotency_key("INV-1001", 1) != charge_idempotency_key("INV-1001", 2)


def test_operation_keys_differ_per_operation() -> None:
    keys = {
        charge_idempotency_key("a1", 1),
        confirm_idempotency_key("a1", 1),
        refund_idempotency_key("a1", 1),
        transfer_idempotency_key("a1"),
        account_idempotency_key("a1"),
    }

    assert len(keys) == 5


@pytest.mark.parametrize("attempt", [0, -1, True])
def test_charge_idempotency_key_rejects_bad_attempt(attempt: int) -> None:
    with pytest.raises(ValueError, match="attempt"):
        charge_idempotency_key("INV-1001", attempt)


@pytest.mark.parametrize("invoice_id", ["", "INV:1001", "INV 1001", "inv/1"])
def test_charge_idempotency_key_rejects_ambiguous_id(invoice_id: str) -> None:
    with pytest.raises(ValueError, match="idempotency key part"):
        charge_idempotency_key(invoice_id, 1)


def test_operation_key_rejects_over_255_characters() -> None:
    with pytest.raises(ValueError, match="255"):
        operation_key("x" * 256)


def test_operation_key_accepts_uuid() -> None:
    key = operation_key("inv", "7b0c6a52-2f7e-4c55-9a0e-1d2f3a4b5c6d", "charge", 3)

    assert key == "inv:7b0c6a52-2f7e-4c55-9a0e-1d2f3a4b5c6d:charge:3"

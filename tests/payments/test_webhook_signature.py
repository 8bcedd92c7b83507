"""Stripe-Signature verification over the raw webhook body."""

from __future__ import annotations

import json
import time

import pytest
import stripe

from superior_one.payments.webhooks import (
    MalformedSignatureError,
    MissingSignatureError,
    SignatureMismatchError,
    TimestampOutsideToleranceError,
    WebhookSecretNotConfiguredError,
    WebhookSignatureError,
    build_signature_header,
    compute_signature,
    parse_webhook_secrets,
    verify_signature,
)

# A payment_intent.succeeded event exactly as received: 2-space indent, LF
# newlines, no trailing newline (247 bytes), signed at SIGNED_AT.
RAW_BODY = (
    b'{\n  "id": "evt_test_0001",\n  "object": "event",\n'
    b'  "type": "payment_intent.succeeded",\n  "created": 1718200000,\n'
    b'  "data": {\n    "object": {\n      "id": "pi_test_0001",\n'
    b'      "amount": 123456,\n      "metadata": {"invoice_id": "INV-1001"}\n'
    b"    }\n  }\n}"
)
SECRET = "whsec_test_0123456789abcdef"
SIGNED_AT = 1718200000
SIGNATURE = "845853418ec4f72de4a5d0b5f67b83a059e929812ea17f10351e9ec2ada6b7e4"
RESERIALIZED_SIGNATURE = "a16a34e15361d1d2ad91aecbd71515a4c8814765447890960bcf3112b72d31ff"
HEADER = f"t={SIGNED_AT},v1={SIGNATURE}"
SERVER_TIME = 1718200060  # 60 s after signing


def test_raw_body_fixture_is_exact() -> None:
    assert len(RAW_BODY) == 247


def test_compute_signature_known_value() -> None:
    assert compute_signature(RAW_BODY, SECRET, SIGNED_AT) == SIGNATURE


def test_verify_signature_raw_bytes_accepted() -> None:
    assert verify_signature(RAW_BODY, HEADER, [SECRET], now=SERVER_TIME) == SIGNED_AT


def test_verify_signature_reserialized_json_rejected() -> None:
    reserialized = json.dumps(json.loads(RAW_BODY)).encode()
    assert reserialized != RAW_BODY
    assert compute_signature(reserialized, SECRET, SIGNED_AT) == RESERIALIZED_SIGNATURE

    with pytest.raises(SignatureMismatchError):
        verify_signature(reserialized, HEADER, [SECRET], now=SERVER_TIME)


def test_verify_signature_tampered_amount_rejected() -> None:
    tampered = RAW_BODY.replace(b"123456", b"123457")
    assert tampered != RAW_BODY

    with pytest.raises(SignatureMismatchError) as excinfo:
        verify_signature(tampered, HEADER, [SECRET], now=SERVER_TIME)
    assert excinfo.value.status == 400


def test_verify_signature_replay_after_400_seconds_rejected() -> None:
    with pytest.raises(TimestampOutsideToleranceError) as excinfo:
        verify_signature(RAW_BODY, HEADER, [SECRET], now=1718200400)
    assert excinfo.value.status == 400
    assert "300 s" in excinfo.value.detail


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_verify_signature_tolerance_edges_accepted(offset: int) -> None:
    assert verify_signature(RAW_BODY, HEADER, [SECRET], now=SIGNED_AT + offset) == SIGNED_AT


@pytest.mark.parametrize("offset", [-301, 301])
def test_verify_signature_beyond_tolerance_rejected(offset: int) -> None:
    with pytest.raises(TimestampOutsideToleranceError):
        verify_signature(RAW_BODY, HEADER, [SECRET], now=SIGNED_AT + offset)


def test_verify_signature_custom_tolerance() -> None:
    with pytest.raises(TimestampOutsideToleranceError):
        verify_signature(RAW_BODY, HEADER, [SECRET], tolerance_s=30, now=SERVER_TIME)


def test_verify_signature_rejects_zero_tolerance() -> None:
    with pytest.raises(ValueError, match="tolerance_s"):
        verify_signature(RAW_BODY, HEADER, [SECRET], tolerance_s=0, now=SERVER_TIME)


def test_verify_signature_any_of_several_v1_signatures() -> None:
    # During a rotation Stripe signs with the old and the new secret.
    header = f"t={SIGNED_AT},v1={'0' * 64},v1={SIGNATURE},v0=ignored"

    assert verify_signature(RAW_BODY, header, [SECRET], now=SERVER_TIME) == SIGNED_AT


def test_verify_signature_any_of_several_secrets() -> None:
    secrets = ["whsec_new_secret", SECRET]

    assert verify_signature(RAW_BODY, HEADER, secrets, now=SERVER_TIME) == SIGNED_AT


def test_verify_signature_wrong_secret_rejected() -> None:
    with pytest.raises(SignatureMismatchError):
        verify_signature(RAW_BODY, HEADER, ["whsec_other"], now=SERVER_TIME)


@pytest.mark.parametrize("secrets", [[], [""], ["", ""]])
def test_verify_signature_empty_secret_rejects_everything(secrets: list[str]) -> None:
    with pytest.raises(WebhookSecretNotConfiguredError) as excinfo:
        verify_signature(RAW_BODY, HEADER, secrets, now=SERVER_TIME)
    assert excinfo.value.status == 404


def test_verify_signature_empty_secret_rejects_empty_signature() -> None:
    # An HMAC keyed with "" is computable by anyone; it must never verify.
    forged = build_signature_header(RAW_BODY, [""], SIGNED_AT)

    with pytest.raises(WebhookSecretNotConfiguredError):
        verify_signature(RAW_BODY, forged, [""], now=SERVER_TIME)


@pytest.mark.parametrize("header", [None, ""])
def test_verify_signature_missing_header(header: str | None) -> None:
    with pytest.raises(MissingSignatureError):
        verify_signature(RAW_BODY, header, [SECRET], now=SERVER_TIME)


@pytest.mark.parametrize(
    "header",
    [
        f"v1={SIGNATURE}",
        f"t=,v1={SIGNATURE}",
        f"t=abc,v1={SIGNATURE}",
        f"t=-1718200000,v1={SIGNATURE}",
        f"t={SIGNED_AT},t={SIGNED_AT},v1={SIGNATURE}",
        f"t={SIGNED_AT}",
        f"t={SIGNED_AT},v0={SIGNATURE}",
        "garbage",
        f"t={SIGNED_AT},v1={SIGNATURE}," + "v1=x," * 1000,
    ],
)
def test_verify_signature_malformed_header(header: str) -> None:
    with pytest.raises(MalformedSignatureError):
        verify_signature(RAW_BODY, header, [SECRET], now=SERVER_TIME)


def test_verify_signature_non_ascii_signature_rejected() -> None:
    header = f"t={SIGNED_AT},v1=é{SIGNATURE[1:]}"

    with pytest.raises(SignatureMismatchError):
        verify_signature(RAW_BODY, header, [SECRET], now=SERVER_TIME)


def test_verify_signature_non_utf8_body_rejected_as_mismatch() -> None:
    with pytest.raises(SignatureMismatchError):
        verify_signature(b"\xff\xfe" + RAW_BODY, HEADER, [SECRET], now=SERVER_TIME)


def test_signature_errors_share_one_base() -> None:
    for error in (
        MissingSignatureError,
        MalformedSignatureError,
        SignatureMismatchError,
        TimestampOutsideToleranceError,
    ):
        assert issubclass(error, WebhookSignatureError)


def test_build_signature_header_one_v1_per_secret() -> None:
    header = build_signature_header(RAW_BODY, [SECRET, "whsec_next"], SIGNED_AT)

    assert header.startswith(f"t={SIGNED_AT},v1={SIGNATURE},v1=")
    assert header.count("v1=") == 2


def test_parse_webhook_secrets_comma_separated() -> None:
    assert parse_webhook_secrets(" whsec_a , ,whsec_b") == ("whsec_a", "whsec_b")


def test_parse_webhook_secrets_empty() -> None:
    assert parse_webhook_secrets("") == ()


def test_stripe_sdk_accepts_our_header() -> None:
    # Cross-check against the official SDK's verifier (it reads time.time(),
    # so sign at the current time).
    now = int(time.time())
    header = build_signature_header(RAW_BODY, [SECRET], now)

    assert stripe.WebhookSignature.verify_header(RAW_BODY, header, SECRET, 300) is True


def test_verify_signature_accepts_stripe_sdk_header() -> None:
    header = stripe.WebhookSignature.generate_signature_header(
        RAW_BODY.decode(), SECRET, timestamp=SIGNED_AT
    )

    assert header == HEADER
    assert verify_signature(RAW_BODY, header, [SECRET], now=SERVER_TIME) == SIGNED_AT

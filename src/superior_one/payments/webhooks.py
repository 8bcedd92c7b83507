"""Verification of Stripe webhook signatures (the ``Stripe-Signature`` header).

Stripe signs ``f"{timestamp}.".encode() + raw_body`` with HMAC-SHA256, keyed by
the endpoint secret (the whole ``whsec_...`` string, as UTF-8), and sends
``Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]``. During a secret
rotation Stripe sends one ``v1`` per active secret, and the platform may hold
several secrets too, so a request is accepted when any ``v1`` matches any
configured secret.

The MAC covers the bytes exactly as received. Verify before any JSON parsing:
re-serialized JSON differs in spacing and key order and never verifies.

Why not ``stripe.WebhookSignature.verify_header`` (stripe 16.1.0)? It computes
the same MAC, and the tests check both directions against it. But it takes one
secret per call and reads the clock from ``time.time()`` with no way to inject
it. It accepts any timestamp in the future and skips the age check when the
tolerance is 0. It raises one error class for every reason, and it decodes the
body as UTF-8 first, so a non-UTF-8 body raises ``UnicodeDecodeError`` instead
of a signature error. :func:`verify_signature` keeps Stripe's algorithm and
fixes those points.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import SecretStr

from superior_one.errors import AppError

SIGNATURE_HEADER = "Stripe-Signature"
SIGNATURE_SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300
# A real header carries a timestamp and a few signatures; a longer one is not
# worth hashing.
MAX_HEADER_LENGTH = 4096

_TIMESTAMP = re.compile(r"\d{1,12}")


class WebhookSignatureError(AppError):
    """A webhook request whose signature does not prove it came from the provider."""

    status = 400
    code = "invalid_webhook_signature"
    title = "Invalid webhook signature"


class MissingSignatureError(WebhookSignatureError):
    """The request has no ``Stripe-Signature`` header."""


class MalformedSignatureError(WebhookSignatureError):
    """The ``Stripe-Signature`` header cannot be parsed or has no ``v1`` signature."""


class SignatureMismatchError(WebhookSignatureError):
    """No ``v1`` signature matches the body under any configured secret."""


class TimestampOutsideToleranceError(WebhookSignatureError):
    """The signed timestamp is too far from the server clock (a replay or a bad clock)."""


class WebhookSecretNotConfiguredError(AppError):
    """No webhook secret is configured, so every webhook is rejected.

    It renders as 404, like an unknown route: a deployment that cannot verify
    webhooks does not tell callers that the endpoint exists. Log it at the
    endpoint so operators see the misconfiguration.
    """

    status = 404
    code = "not_found"
    title = "Not found"


@dataclass(frozen=True, slots=True)
class SignatureHeader:
    timestamp: int
    signatures: tuple[str, ...]


def parse_webhook_secrets(value: SecretStr | str) -> tuple[str, ...]:
    """Split a comma-separated secret setting into the secrets, dropping blanks."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def compute_signature(payload: bytes, secret: str, timestamp: int) -> str:
    """Return the hex ``v1`` signature of ``payload`` signed at ``timestamp``."""
    signed = str(timestamp).encode("ascii") + b"." + payload
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def build_signature_header(payload: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """Build a ``Stripe-Signature`` value with one ``v1`` per secret, as Stripe sends it."""
    parts = [f"t={timestamp}"]
    parts.extend(f"{SIGNATURE_SCHEME}={compute_signature(payload, s, timestamp)}" for s in secrets)
    return ",".join(parts)


def parse_signature_header(header: str) -> SignatureHeader:
    """Parse ``t=...,v1=...`` into the timestamp and the ``v1`` signatures.

    Other schemes (Stripe's test-mode ``v0``) are ignored.
    """
    if len(header) > MAX_HEADER_LENGTH:
        raise MalformedSignatureError(
            f"The {SIGNATURE_HEADER} header is longer than {MAX_HEADER_LENGTH} characters."
        )

    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            timestamps.append(value)
        elif name == SIGNATURE_SCHEME:
            signatures.append(value)

    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        raise MalformedSignatureError(
            f"The {SIGNATURE_HEADER} header must contain exactly one timestamp 't=<unix seconds>'."
        )
    if not signatures:
        raise MalformedSignatureError(
            f"The {SIGNATURE_HEADER} header contains no '{SIGNATURE_SCHEME}=' signature."
        )
    return SignatureHeader(timestamp=int(timestamps[0]), signatures=tuple(signatures))


def verify_signature(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Verify ``header`` against the raw request body and return the signed timestamp.

    ``payload`` must be the body bytes exactly as received. The timestamp must
    lie within ``tolerance_s`` seconds of ``now`` (default: the system clock),
    in either direction. Raise a :class:`WebhookSignatureError` subclass, or
    :class:`WebhookSecretNotConfiguredError` when ``secrets`` contains no
    non-empty secret.
    """
    usable_secrets = [s for s in secrets if s]
    if not usable_secrets:
        raise WebhookSecretNotConfiguredError("Resource not found.")
    if tolerance_s <= 0:
        raise ValueError(f"tolerance_s must be positive, got {tolerance_s}")
    if not header:
        raise MissingSignatureError(f"The {SIGNATURE_HEADER} header is missing.")

    parsed = parse_signature_header(header)

    # compare_digest over every pair: the time taken does not depend on which
    # secret or signature matched, or on how many leading characters matched.
    # Bytes, because compare_digest raises TypeError on non-ASCII str.
    candidates = [s.encode("utf-8") for s in parsed.signatures]
    matched = False
    for secret in usable_secrets:
        expected = compute_signature(payload, secret, parsed.timestamp).encode("ascii")
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureMismatchError(
            f"No {SIGNATURE_SCHEME} signature in the {SIGNATURE_HEADER} header matches the "
            "request body. Verify the raw body bytes, before any JSON parsing, with the "
            "endpoint's signing secret."
        )

    current = time.time() if now is None else now
    age_s = current - parsed.timestamp
    if abs(age_s) > tolerance_s:
        raise TimestampOutsideToleranceError(
            f"The signed timestamp {parsed.timestamp} is {int(age_s)} s away from the server "
            f"clock; at most {tolerance_s} s is accepted."
        )
    return parsed.timestamp

"""FMCSA QCMobile integration: client, resilience, verification, revocation file."""

from superior_one.integrations.fmcsa.client import Fetched, FmcsaClient, http_timeout
from superior_one.integrations.fmcsa.errors import (
    FmcsaCircuitOpenError,
    FmcsaConfigurationError,
    FmcsaError,
    FmcsaMaintenanceError,
    FmcsaOverBudgetError,
    FmcsaResponseError,
    FmcsaTransientError,
    FmcsaUnavailableError,
)
from superior_one.integrations.fmcsa.service import (
    CarrierIdentifier,
    CarrierVerification,
    IdentifierKind,
    VerificationReason,
    VerificationStatus,
    evaluate_carrier,
    parse_carrier_identifier,
    verify_carrier,
)

__all__ = [
    "CarrierIdentifier",
    "CarrierVerification",
    "Fetched",
    "FmcsaCircuitOpenError",
    "FmcsaClient",
    "FmcsaConfigurationError",
    "FmcsaError",
    "FmcsaMaintenanceError",
    "FmcsaOverBudgetError",
    "FmcsaResponseError",
    "FmcsaTransientError",
    "FmcsaUnavailableError",
    "IdentifierKind",
    "VerificationReason",
    "VerificationStatus",
    "evaluate_carrier",
    "http_timeout",
    "parse_carrier_identifier",
    "verify_carrier",
]

"""Authentication errors, each with its own code so clients can tell them apart."""

from __future__ import annotations

from superior_one.errors import AppError, AuthenticationError, PermissionDeniedError


class TokenMissingError(AuthenticationError):
    code = "token_missing"


class TokenMalformedError(AuthenticationError):
    code = "token_malformed"


class TokenExpiredError(AuthenticationError):
    code = "token_expired"


class TokenSignatureInvalidError(AuthenticationError):
    code = "token_signature_invalid"


class TokenAlgorithmRejectedError(AuthenticationError):
    code = "token_algorithm_rejected"


class TokenClaimsInvalidError(AuthenticationError):
    code = "token_claims_invalid"


class TokenRevokedError(AuthenticationError):
    code = "token_revoked"


class AccountDeactivatedError(AuthenticationError):
    code = "account_deactivated"


class OrganizationDeactivatedError(AuthenticationError):
    code = "organization_deactivated"


class InvalidCredentialsError(AuthenticationError):
    code = "invalid_credentials"
    title = "Invalid credentials"


class RefreshTokenInvalidError(AuthenticationError):
    code = "refresh_token_invalid"


class RefreshTokenExpiredError(AuthenticationError):
    code = "refresh_token_expired"


class RefreshTokenReusedError(AuthenticationError):
    code = "refresh_token_reused"
    # The family revocation must be committed even though the request fails.
    keep_changes = True


class RoleRequiredError(PermissionDeniedError):
    code = "role_required"


class LoginRateLimitedError(AppError):
    status = 429
    code = "login_rate_limited"
    title = "Too many login attempts"

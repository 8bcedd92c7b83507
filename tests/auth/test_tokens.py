"""Each kind of bad access token gets 401 with its own code."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid

import httpx
import jwt
import orjson
import pytest

from superior_one.accounts.models import OrganizationType, Role
from superior_one.auth.errors import TokenSignatureInvalidError
from superior_one.auth.tokens import AccessTokenVerifier, issue_access_token
from superior_one.config import Settings
from superior_one.resources import Resources
from tests.factories import access_token, create_organization, create_user


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def _claims(settings: Settings, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "sub": str(uuid.uuid4()),
        "org": str(uuid.uuid4()),
        "role": "DISPATCHER",
        "ver": 1,
    }
    claims.update(overrides)
    return claims


async def _me_code(client: httpx.AsyncClient, token: str) -> tuple[int, str]:
    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.json()["code"]


async def test_token_missing_gets_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")
    assert response.status_code == 401
    assert response.json()["code"] == "token_missing"


async def test_token_malformed_gets_401(client: httpx.AsyncClient) -> None:
    assert await _me_code(client, "not-a-jwt") == (401, "token_malformed")


async def test_token_expired_gets_401(client: httpx.AsyncClient, settings: Settings) -> None:
    token = jwt.encode(
        _claims(settings, exp=int(time.time()) - 5),
        settings.jwt_secret.get_secret_value(),
        algorithm="HS256",
    )
    assert await _me_code(client, token) == (401, "token_expired")


async def test_token_wrong_signature_gets_401(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = jwt.encode(
        _claims(settings), "another-secret-of-sufficient-length-xxxxxxxx", algorithm="HS256"
    )
    assert await _me_code(client, token) == (401, "token_signature_invalid")


async def test_token_alg_none_gets_401(client: httpx.AsyncClient, settings: Settings) -> None:
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(settings))}."
    assert await _me_code(client, token) == (401, "token_algorithm_rejected")


async def test_token_other_hmac_algorithm_gets_401(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = jwt.encode(_claims(settings), settings.jwt_secret.get_secret_value(), "HS512")
    assert await _me_code(client, token) == (401, "token_algorithm_rejected")


@pytest.mark.parametrize("missing", ["ver", "org", "jti", "aud"])
async def test_token_missing_claim_gets_401(
    client: httpx.AsyncClient, settings: Settings, missing: str
) -> None:
    claims = _claims(settings)
    del claims[missing]
    token = jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
    assert await _me_code(client, token) == (401, "token_claims_invalid")


async def test_token_wrong_audience_gets_401(client: httpx.AsyncClient, settings: Settings) -> None:
    token = jwt.encode(
        _claims(settings, aud="someone-else"),
        settings.jwt_secret.get_secret_value(),
        algorithm="HS256",
    )
    assert await _me_code(client, token) == (401, "token_claims_invalid")


async def test_token_stale_version_gets_401(
    client: httpx.AsyncClient, settings: Settings, resources: Resources
) -> None:
    org = await create_organization(resources.sessionmaker, OrganizationType.CARRIER)
    user = await create_user(resources.sessionmaker, settings, org, Role.DISPATCHER)
    stale = issue_access_token(
        settings,
        user_id=user.id,
        organization_id=org.id,
        role=user.role.value,
        token_version=user.token_version - 1,
    )
    assert await _me_code(client, stale) == (401, "token_revoked")
    assert (
        await client.get("/me", headers={"Authorization": f"Bearer {access_token(settings, user)}"})
    ).status_code == 200


async def test_verified_token_expires_while_remembered(
    client: httpx.AsyncClient, settings: Settings, resources: Resources
) -> None:
    # The api remembers a verified token; the remembered claims must still expire.
    organization = await create_organization(resources.sessionmaker, OrganizationType.CARRIER)
    user = await create_user(resources.sessionmaker, settings, organization, Role.DISPATCHER)
    token = jwt.encode(
        _claims(
            settings,
            exp=int(time.time()) + 2,
            sub=str(user.id),
            org=str(organization.id),
            ver=user.token_version,
        ),
        settings.jwt_secret.get_secret_value(),
        algorithm="HS256",
    )
    response = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    await asyncio.sleep(2.1)
    assert await _me_code(client, token) == (401, "token_expired")


def test_verifier_remembers_a_verified_token_only(settings: Settings) -> None:
    verifier = AccessTokenVerifier(settings)
    claims = _claims(settings)
    token = jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
    assert verifier.verify(token).jti == claims["jti"]

    header, _, signature = token.split(".")
    forged = f"{header}.{_b64({**claims, 'role': 'ORG_ADMIN'})}.{signature}"
    with pytest.raises(TokenSignatureInvalidError):
        verifier.verify(forged)
    # The forged token is not remembered either: the same error the second time.
    with pytest.raises(TokenSignatureInvalidError):
        verifier.verify(forged)


async def test_token_with_exp_beyond_representable_dates_gets_401(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = jwt.encode(
        _claims(settings, exp=10**30), settings.jwt_secret.get_secret_value(), algorithm="HS256"
    )

    assert await _me_code(client, token) == (401, "token_claims_invalid")

from __future__ import annotations

import httpx

from superior_one.accounts.models import OrganizationType, Role
from superior_one.config import Settings
from superior_one.resources import Resources
from tests.factories import DEFAULT_PASSWORD, create_organization, create_user


async def _login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await client.post("/auth/login", json={"email": email, "password": DEFAULT_PASSWORD})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def _new_user_email(resources: Resources, settings: Settings) -> str:
    org = await create_organization(resources.sessionmaker, OrganizationType.CARRIER)
    user = await create_user(resources.sessionmaker, settings, org, Role.DISPATCHER)
    return user.email


async def test_refresh_rotates_token(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    first = await _login(client, await _new_user_email(resources, settings))

    rotated = await client.post("/auth/refresh", json={"refreshToken": first["refreshToken"]})

    assert rotated.status_code == 200
    assert rotated.json()["refreshToken"] != first["refreshToken"]
    me = await client.get(
        "/me", headers={"Authorization": f"Bearer {rotated.json()['accessToken']}"}
    )
    assert me.status_code == 200


async def test_refresh_reuse_revokes_family(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    first = await _login(client, await _new_user_email(resources, settings))
    second = (
        await client.post("/auth/refresh", json={"refreshToken": first["refreshToken"]})
    ).json()

    reuse = await client.post("/auth/refresh", json={"refreshToken": first["refreshToken"]})
    after = await client.post("/auth/refresh", json={"refreshToken": second["refreshToken"]})

    assert reuse.status_code == 401
    assert reuse.json()["code"] == "refresh_token_reused"
    assert after.status_code == 401
    assert after.json()["code"] == "refresh_token_reused"


async def test_refresh_reuse_leaves_other_logins_alone(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    email = await _new_user_email(resources, settings)
    stolen = await _login(client, email)
    other_device = await _login(client, email)
    await client.post("/auth/refresh", json={"refreshToken": stolen["refreshToken"]})
    await client.post("/auth/refresh", json={"refreshToken": stolen["refreshToken"]})

    other = await client.post("/auth/refresh", json={"refreshToken": other_device["refreshToken"]})

    assert other.status_code == 200


async def test_refresh_unknown_token_gets_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/refresh", json={"refreshToken": "x" * 43})
    assert response.status_code == 401
    assert response.json()["code"] == "refresh_token_invalid"


async def test_logout_revokes_refresh_family(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    tokens = await _login(client, await _new_user_email(resources, settings))
    headers = {"Authorization": f"Bearer {tokens['accessToken']}"}

    logout = await client.post(
        "/auth/logout", headers=headers, json={"refreshToken": tokens["refreshToken"]}
    )
    refresh = await client.post("/auth/refresh", json={"refreshToken": tokens["refreshToken"]})

    assert logout.status_code == 204
    assert refresh.status_code == 401


async def test_logout_everywhere_revokes_access_tokens(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    email = await _new_user_email(resources, settings)
    laptop = await _login(client, email)
    phone = await _login(client, email)

    logout = await client.post(
        "/auth/logout",
        headers={"Authorization": f"Bearer {laptop['accessToken']}"},
        json={"allSessions": True},
    )
    phone_me = await client.get("/me", headers={"Authorization": f"Bearer {phone['accessToken']}"})
    phone_refresh = await client.post("/auth/refresh", json={"refreshToken": phone["refreshToken"]})

    assert logout.status_code == 204
    assert phone_me.status_code == 401
    assert phone_refresh.status_code == 401

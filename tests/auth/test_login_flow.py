from __future__ import annotations

import httpx

from superior_one.accounts.models import OrganizationType, Role
from superior_one.config import Settings
from superior_one.resources import Resources
from tests.factories import DEFAULT_PASSWORD, create_organization, create_user


async def test_login_then_me_returns_user(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    org = await create_organization(resources.sessionmaker, OrganizationType.CARRIER)
    user = await create_user(resources.sessionmaker, settings, org, Role.DISPATCHER)

    login = await client.post(
        "/auth/login", json={"email": user.email, "password": DEFAULT_PASSWORD}
    )
    assert login.status_code == 200, login.text
    token = login.json()["accessToken"]

    me = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert me.json()["userId"] == str(user.id)
    assert me.json()["organizationType"] == "CARRIER"

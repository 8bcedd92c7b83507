from __future__ import annotations

import uuid

import httpx
import pytest

from superior_one.accounts.models import Organization, OrganizationType, Role, User
from superior_one.config import Settings
from superior_one.resources import Resources
from tests.factories import DEFAULT_PASSWORD, auth_headers, create_organization, create_user


async def _platform_admin(resources: Resources, settings: Settings) -> User:
    platform = await create_organization(resources.sessionmaker, OrganizationType.PLATFORM)
    return await create_user(resources.sessionmaker, settings, platform, Role.PLATFORM_ADMIN)


async def _org_with_admin(
    resources: Resources, settings: Settings, type: OrganizationType = OrganizationType.CARRIER
) -> tuple[Organization, User]:
    org = await create_organization(resources.sessionmaker, type)
    return org, await create_user(resources.sessionmaker, settings, org, Role.ORG_ADMIN)


async def test_platform_admin_creates_organization(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    admin = await _platform_admin(resources, settings)

    response = await client.post(
        "/admin/organizations",
        headers=auth_headers(settings, admin),
        json={"name": "Rocky Mountain Gravel", "type": "SHIPPER"},
    )

    assert response.status_code == 201, response.text
    assert response.json()["type"] == "SHIPPER"
    assert response.json()["isActive"] is True


async def test_org_admin_cannot_create_organization(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    _, org_admin = await _org_with_admin(resources, settings)

    response = await client.post(
        "/admin/organizations",
        headers=auth_headers(settings, org_admin),
        json={"name": "Sneaky Org", "type": "SHIPPER"},
    )

    assert response.status_code == 403
    assert response.json()["code"] == "role_required"


async def test_invitation_accepted_creates_user_who_can_log_in(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    org, org_admin = await _org_with_admin(resources, settings)

    invite = await client.post(
        f"/organizations/{org.id}/invitations",
        headers=auth_headers(settings, org_admin),
        json={"email": "New.Driver@Example.com", "role": "DRIVER"},
    )
    assert invite.status_code == 201, invite.text
    accept = await client.post(
        "/auth/accept-invitation",
        json={"token": invite.json()["token"], "password": DEFAULT_PASSWORD},
    )
    login = await client.post(
        "/auth/login", json={"email": "new.driver@example.com", "password": DEFAULT_PASSWORD}
    )

    assert accept.status_code == 201, accept.text
    assert accept.json()["role"] == "DRIVER"
    assert login.status_code == 200


@pytest.mark.parametrize(
    ("accepted_name", "expected"),
    [(None, "Dana Reyes"), ("Dana R. Reyes", "Dana R. Reyes")],
    ids=["invited-name", "own-name"],
)
async def test_invitation_full_name_defaults_from_invite(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    accepted_name: str | None,
    expected: str,
) -> None:
    org, org_admin = await _org_with_admin(resources, settings)
    invite = await client.post(
        f"/organizations/{org.id}/invitations",
        headers=auth_headers(settings, org_admin),
        json={"email": "dana@example.com", "role": "DRIVER", "fullName": "Dana Reyes"},
    )
    body = {"token": invite.json()["token"], "password": DEFAULT_PASSWORD}
    if accepted_name is not None:
        body["fullName"] = accepted_name

    accept = await client.post("/auth/accept-invitation", json=body)

    assert accept.status_code == 201, accept.text
    assert accept.json()["fullName"] == expected


@pytest.mark.parametrize(
    ("invited_name", "expected"),
    [("Dana Reyes", "Dana Reyes"), (None, None), ("   ", None)],
    ids=["named", "unnamed", "blank"],
)
async def test_invitation_response_returns_full_name(
    client: httpx.AsyncClient,
    resources: Resources,
    settings: Settings,
    invited_name: str | None,
    expected: str | None,
) -> None:
    org, org_admin = await _org_with_admin(resources, settings)
    body = {"email": "dana@example.com", "role": "DRIVER"}
    if invited_name is not None:
        body["fullName"] = invited_name

    invite = await client.post(
        f"/organizations/{org.id}/invitations",
        headers=auth_headers(settings, org_admin),
        json=body,
    )

    assert invite.status_code == 201, invite.text
    assert invite.json()["fullName"] == expected


async def test_invitation_schema_documents_nullable_full_name(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()

    invitation = spec["components"]["schemas"]["InvitationOut"]
    assert "fullName" in invitation["required"]
    assert {"type": "null"} in invitation["properties"]["fullName"]["anyOf"]


async def test_invitation_accepted_twice_is_rejected(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    org, org_admin = await _org_with_admin(resources, settings)
    invite = await client.post(
        f"/organizations/{org.id}/invitations",
        headers=auth_headers(settings, org_admin),
        json={"email": "twice@example.com", "role": "DISPATCHER"},
    )
    body = {"token": invite.json()["token"], "password": DEFAULT_PASSWORD}

    first = await client.post("/auth/accept-invitation", json=body)
    second = await client.post("/auth/accept-invitation", json=body)

    assert first.status_code == 201
    assert second.status_code == 400
    assert second.json()["code"] == "invitation_invalid"


async def test_duplicate_email_gets_409(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    org, org_admin = await _org_with_admin(resources, settings)
    headers = auth_headers(settings, org_admin)
    tokens = []
    for _ in range(2):
        invite = await client.post(
            f"/organizations/{org.id}/invitations",
            headers=headers,
            json={"email": "dup@example.com", "role": "DRIVER"},
        )
        tokens.append(invite.json()["token"])

    await client.post(
        "/auth/accept-invitation", json={"token": tokens[0], "password": DEFAULT_PASSWORD}
    )
    duplicate = await client.post(
        "/auth/accept-invitation", json={"token": tokens[1], "password": DEFAULT_PASSWORD}
    )

    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "already_exists"


async def test_invitation_for_existing_user_email_gets_409(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    org, org_admin = await _org_with_admin(resources, settings)

    invite = await client.post(
        f"/organizations/{org.id}/invitations",
        headers=auth_headers(settings, org_admin),
        json={"email": org_admin.email.upper(), "role": "DRIVER"},
    )

    assert invite.status_code == 409
    assert invite.json()["code"] == "email_in_use"


async def test_org_admin_cannot_invite_into_other_organization(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    _, org_admin = await _org_with_admin(resources, settings)
    other, _ = await _org_with_admin(resources, settings)

    response = await client.post(
        f"/organizations/{other.id}/invitations",
        headers=auth_headers(settings, org_admin),
        json={"email": "x@example.com", "role": "DRIVER"},
    )

    assert response.status_code == 404


async def test_org_admin_cannot_grant_platform_admin(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    org, org_admin = await _org_with_admin(resources, settings)

    response = await client.post(
        f"/organizations/{org.id}/invitations",
        headers=auth_headers(settings, org_admin),
        json={"email": "boss@example.com", "role": "PLATFORM_ADMIN"},
    )

    assert response.status_code == 403
    assert response.json()["code"] == "role_not_assignable"


async def test_other_tenants_user_is_not_found(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    _, org_admin = await _org_with_admin(resources, settings)
    other_org, _ = await _org_with_admin(resources, settings)
    victim = await create_user(resources.sessionmaker, settings, other_org, Role.DRIVER)

    response = await client.patch(
        f"/users/{victim.id}", headers=auth_headers(settings, org_admin), json={"isActive": False}
    )

    assert response.status_code == 404
    assert response.json()["code"] == "user_not_found"


async def test_missing_user_is_not_found(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    _, org_admin = await _org_with_admin(resources, settings)

    response = await client.patch(
        f"/users/{uuid.uuid4()}", headers=auth_headers(settings, org_admin), json={"role": "DRIVER"}
    )

    assert response.status_code == 404


async def test_dispatcher_cannot_deactivate_users(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    org, _ = await _org_with_admin(resources, settings)
    dispatcher = await create_user(resources.sessionmaker, settings, org, Role.DISPATCHER)
    driver = await create_user(resources.sessionmaker, settings, org, Role.DRIVER)

    response = await client.patch(
        f"/users/{driver.id}", headers=auth_headers(settings, dispatcher), json={"isActive": False}
    )

    assert response.status_code == 403


async def test_admin_cannot_deactivate_self(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    _, org_admin = await _org_with_admin(resources, settings)

    response = await client.patch(
        f"/users/{org_admin.id}",
        headers=auth_headers(settings, org_admin),
        json={"isActive": False},
    )

    assert response.status_code == 409
    assert response.json()["code"] == "self_lockout"

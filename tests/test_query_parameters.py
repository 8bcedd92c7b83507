"""Every GET route with query parameters rejects a name it does not declare."""

from __future__ import annotations

import re
import uuid

import httpx
from fastapi import FastAPI

from superior_one.accounts.models import OrganizationType, Role
from superior_one.config import Settings
from superior_one.resources import Resources
from tests.factories import auth_headers, create_organization, create_user


def _get_paths_with_query(app: FastAPI) -> list[str]:
    return [
        path
        for path, operations in app.openapi()["paths"].items()
        if any(p["in"] == "query" for p in operations.get("get", {}).get("parameters", []))
    ]


async def test_unknown_query_parameter_rejected_everywhere(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    organization = await create_organization(resources.sessionmaker, OrganizationType.SHIPPER)
    user = await create_user(resources.sessionmaker, settings, organization, Role.ORG_ADMIN)
    headers = auth_headers(settings, user)
    paths = _get_paths_with_query(app)
    not_rejected = []

    for path in paths:
        # The check runs before the route reads anything, so a random id is enough.
        concrete = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        response = await client.get(concrete, params={"bogusName": "1"}, headers=headers)
        fields = [e["field"] for e in response.json().get("errors", [])]
        if response.status_code != 422 or "bogusName" not in fields:
            not_rejected.append(f"{path}: {response.status_code}")

    assert "/loads/{load_id}/track" in paths
    assert not_rejected == []

"""The API docs render without the Internet: every asset comes from this server."""

from __future__ import annotations

import re

import httpx
import pytest


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_apidocs_page_loads_no_remote_asset(client: httpx.AsyncClient, page: str) -> None:
    html = (await client.get(page)).text

    assert re.findall(r"""(?:src|href)=["'](https?:)?//""", html) == []


@pytest.mark.parametrize(
    "asset", ["swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"]
)
async def test_apidocs_assets_are_served_locally(client: httpx.AsyncClient, asset: str) -> None:
    response = await client.get(f"/docs-assets/{asset}")

    assert (response.status_code, len(response.content) > 1000) == (200, True)


async def test_apidocs_unknown_asset_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs-assets/..%2Fcore.py")).status_code == 404


async def test_apidocs_openapi_lists_the_board(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()

    assert "/loads" in spec["paths"]

"""API documentation pages (Swagger UI and ReDoc) served with local assets, no CDN.

FastAPI's own /docs page loads Swagger UI from a CDN, which fails on a machine
without Internet access. The JavaScript and CSS here come from the pinned
``fastapi-offline`` package (Swagger UI 5, which renders OpenAPI 3.1); only its
static files are used, served under ``/docs-assets``.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from superior_one.errors import NotFoundError

ASSETS_DIR = files("fastapi_offline") / "static"
ASSET_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}/docs-assets/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/docs-assets/swagger-ui.css",
        swagger_favicon_url=f"{root}/docs-assets/favicon.png",
        swagger_ui_parameters={"persistAuthorization": True},
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}/docs-assets/redoc.standalone.js",
        redoc_favicon_url=f"{root}/docs-assets/favicon.png",
        with_google_fonts=False,
    )


@router.get("/docs-assets/{name}")
async def asset(name: str) -> FileResponse:
    media_type = ASSET_FILES.get(name)
    if media_type is None:
        raise NotFoundError(f"No documentation asset named {name!r}.")
    path = ASSETS_DIR / name
    return FileResponse(
        str(path), media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
    )

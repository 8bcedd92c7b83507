"""``GET /metrics``: the api's Prometheus exposition, all processes aggregated."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response

from superior_one.errors import AuthenticationError
from superior_one.observability.metrics import EXPOSITION_CONTENT_TYPE, render_latest

router = APIRouter(tags=["operations"], include_in_schema=False)


# A plain function: FastAPI runs it in its thread pool, so reading the multiprocess
# files does not block the event loop.
@router.get("/metrics")
def metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics_token.get_secret_value()
    if token:
        supplied = request.headers.get("authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
            raise AuthenticationError(
                "The metrics endpoint needs the bearer token set in SO_METRICS_TOKEN.",
                headers={"WWW-Authenticate": "Bearer"},
            )
    return Response(render_latest(), media_type=EXPOSITION_CONTENT_TYPE)

"""Fixtures of the board tests: a shipper and a carrier, and the SQL a request sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event

from superior_one.accounts.models import OrganizationType
from superior_one.config import Settings
from superior_one.resources import Resources
from tests.loads.factories import Party, create_party


@pytest.fixture
async def parties(resources: Resources, settings: Settings) -> tuple[Party, Party]:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)
    carrier = await create_party(resources.sessionmaker, settings, OrganizationType.CARRIER)
    return shipper, carrier


@pytest.fixture
async def statement_log(app: FastAPI) -> AsyncIterator[list[str]]:
    """Every SQL statement the app's engine sends while the test runs."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    yield statements
    event.remove(engine, "before_cursor_execute", record)

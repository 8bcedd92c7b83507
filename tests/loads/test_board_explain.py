"""EXPLAIN shows the board's main filter combinations answered from its indexes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.config import Settings
from superior_one.loads.board import BoardSearch, BoardSort, Cursor, GeoCircle
from superior_one.loads.models import HaulType
from superior_one.loads.repository import (
    LoadsRepository,
    board_count_statement,
    board_page_statement,
)
from superior_one.loads.seed import SeedOptions, seed
from superior_one.resources import Resources

# A cursor in the middle of the board: a week out, mid-range id.
_MID_ID = uuid.UUID(int=2**127)
DALLAS = GeoCircle(32.7767, -96.7970, 50.0)
CHICAGO_250 = GeoCircle(41.8781, -87.6298, 250.0)
ATLANTA_100 = GeoCircle(33.7490, -84.3880, 100.0)


def _searches() -> dict[str, tuple[BoardSearch, Cursor | None]]:
    deep = Cursor(BoardSort.PICKUP_DATE, datetime.now(UTC) + timedelta(days=7), _MID_ID)
    return {
        "default order": (BoardSearch(), None),
        "origin state": (BoardSearch(origin_state="TX"), None),
        "lane": (BoardSearch(origin_state="TX", destination_state="OK"), None),
        "equipment": (BoardSearch(equipment_types=("FLATBED",)), None),
        "haul and rate": (
            BoardSearch(haul_type=HaulType.LONG_HAUL, min_rate_cents=300_000, sort=BoardSort.RATE),
            None,
        ),
        "rate per mile": (BoardSearch(sort=BoardSort.RATE_PER_MILE), None),
        "equipment and minimum rate by rate": (
            BoardSearch(equipment_types=("LOWBOY",), min_rate_cents=150_000, sort=BoardSort.RATE),
            None,
        ),
        "haul type by rate per mile": (
            BoardSearch(haul_type=HaulType.REGIONAL, sort=BoardSort.RATE_PER_MILE),
            None,
        ),
        "radius 50": (BoardSearch(origin=DALLAS), None),
        "radius 250 by distance": (BoardSearch(origin=CHICAGO_250, sort=BoardSort.DISTANCE), None),
        "destination radius": (BoardSearch(destination=ATLANTA_100), None),
        "origin radius and destination state": (
            BoardSearch(origin=ATLANTA_100, destination_state="TX"),
            None,
        ),
        "commodity text": (BoardSearch(commodity="gravel"), None),
        "deep page": (BoardSearch(), deep),
    }


async def _plan(
    session: AsyncSession, search: BoardSearch, sql: str, params: dict[str, Any]
) -> str:
    # With the planner settings the service uses for this search.
    await LoadsRepository(session).prepare_board_transaction(search)
    connection = await session.connection()
    result = await connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, params)
    return json.dumps(result.scalar_one())


def _uses_board_index_only(plan: str) -> bool:
    return "ix_loads_board_" in plan and '"Seq Scan"' not in plan


async def _plans(resources: Resources) -> dict[str, str]:
    plans: dict[str, str] = {}
    async with resources.sessionmaker() as session:
        for name, (search, after) in _searches().items():
            fetch = 104 if search.sort is BoardSort.DISTANCE else None
            sql, params = board_page_statement(search, after, 26, count_cap=500, fetch=fetch)
            plans[name] = await _plan(session, search, sql, params)
        count_search = BoardSearch(origin_state="CA")
        sql, params = board_count_statement(count_search, 1000)
        plans["capped count"] = await _plan(session, count_search, sql, params)
        await session.rollback()
    return plans


# Combinations whose plan must read one index in particular.
EXPECTED_INDEX = {
    "equipment and minimum rate by rate": "ix_loads_board_equipment_rate",
    "haul type by rate per mile": "ix_loads_board_haul_rate_per_mile",
    "radius 50": "ix_loads_board_pickup_point",
    "radius 250 by distance": "ix_loads_board_pickup_point",
    "origin radius and destination state": "ix_loads_board_pickup_point",
    "destination radius": "ix_loads_board_delivery_point",
}


async def test_board_explain_every_main_combination_uses_its_board_index(
    resources: Resources, settings: Settings
) -> None:
    # One seeded board for every plan: seeding is the slow part of this test.
    await seed(settings, SeedOptions(loads=20_000, seed=7))

    plans = await _plans(resources)
    checks = {f"{name}: board index only": _uses_board_index_only(p) for name, p in plans.items()}
    checks |= {f"{name}: {index}": index in plans[name] for name, index in EXPECTED_INDEX.items()}

    assert checks == {name: True for name in checks}

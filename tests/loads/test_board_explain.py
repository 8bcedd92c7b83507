"""EXPLAIN shows the board's main filter combinations answered from its indexes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from superior_one.config import Settings
from superior_one.loads.board import BoardSearch, BoardSort, Cursor, GeoCircle
from superior_one.loads.models import HaulType
from superior_one.loads.repository import board_count_query, board_page_query
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
        "radius 50": (BoardSearch(origin=DALLAS), None),
        "radius 250 by distance": (BoardSearch(origin=CHICAGO_250, sort=BoardSort.DISTANCE), None),
        "destination radius": (BoardSearch(destination=ATLANTA_100), None),
        "commodity text": (BoardSearch(commodity="gravel"), None),
        "deep page": (BoardSearch(), deep),
    }


def _compiled(query: Select[Any]) -> tuple[str, dict[str, Any]]:
    compiled = query.compile(dialect=postgresql.psycopg.dialect())  # type: ignore[attr-defined]
    return str(compiled), dict(compiled.params)


async def _plan(conn: AsyncConnection, query: Select[Any]) -> str:
    sql, params = _compiled(query)
    result = await conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, params)
    return json.dumps(result.scalar_one())


def _uses_board_index_only(plan: str) -> bool:
    return "ix_loads_board_" in plan and '"Seq Scan"' not in plan


async def test_board_explain_every_main_combination_uses_a_board_index(
    resources: Resources, settings: Settings
) -> None:
    await seed(settings, SeedOptions(loads=20_000, seed=7))

    plans: dict[str, bool] = {}
    async with resources.engine.connect() as conn:
        await conn.execute(text("SET plan_cache_mode = force_custom_plan"))
        for name, (search, after) in _searches().items():
            plans[name] = _uses_board_index_only(
                await _plan(conn, board_page_query(search, after, 26))
            )
        plans["capped count"] = _uses_board_index_only(
            await _plan(conn, board_count_query(BoardSearch(origin_state="CA"), 1000))
        )

    assert plans == {name: True for name in plans}

"""Equipment recommendations from the reference data, in tiers with reasons."""

from __future__ import annotations

import httpx
import pytest

from superior_one.accounts.models import OrganizationType
from superior_one.config import Settings
from superior_one.loads.matching import EquipmentCatalog, load_catalog
from superior_one.loads.models import EquipmentTier, HaulType, LoadType
from superior_one.resources import Resources
from tests.loads.factories import create_party


@pytest.fixture
async def catalog(resources: Resources) -> EquipmentCatalog:
    async with resources.sessionmaker() as session:
        return await load_catalog(session)


def _tiers(
    catalog: EquipmentCatalog, commodity: str, load: LoadType, haul: HaulType, lbs: int
) -> list[tuple[str, EquipmentTier]]:
    return [(r.equipment.code, r.tier) for r in catalog.recommend(commodity, load, haul, lbs)]


def test_matching_local_gravel_prefers_dump_trucks(catalog: EquipmentCatalog) -> None:
    assert _tiers(catalog, "Washed gravel", LoadType.BULK, HaulType.LOCAL, 30_000) == [
        ("TRI_AXLE_DUMP", EquipmentTier.OPTIMAL),
        ("END_DUMP", EquipmentTier.OPTIMAL),
        ("BELLY_DUMP", EquipmentTier.ACCEPTABLE),
    ]


def test_matching_leaves_out_equipment_below_the_weight(catalog: EquipmentCatalog) -> None:
    codes = [c for c, _ in _tiers(catalog, "Gravel", LoadType.BULK, HaulType.LOCAL, 40_000)]
    assert "TRI_AXLE_DUMP" not in codes


def test_matching_heavy_excavator_needs_a_lowboy(catalog: EquipmentCatalog) -> None:
    assert _tiers(catalog, "Excavator CAT 336", LoadType.HEAVY_HAUL, HaulType.REGIONAL, 75_000) == [
        ("LOWBOY", EquipmentTier.OPTIMAL)
    ]


def test_matching_gives_each_recommendation_a_reason(catalog: EquipmentCatalog) -> None:
    found = catalog.recommend("Hot mix asphalt", LoadType.BULK, HaulType.LOCAL, 30_000)
    assert all(r.reason for r in found) and found


def test_matching_unknown_commodity_falls_back_to_general_freight(
    catalog: EquipmentCatalog,
) -> None:
    assert _tiers(
        catalog, "Garden gnomes", LoadType.FULL_TRUCKLOAD, HaulType.LONG_HAUL, 20_000
    ) == [("DRY_VAN", EquipmentTier.ACCEPTABLE)]


async def test_matching_endpoint_returns_tiers(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    shipper = await create_party(resources.sessionmaker, settings, OrganizationType.SHIPPER)

    response = await client.get(
        "/equipment-types/recommendations",
        params={"commodity": "Riprap", "loadType": "BULK", "haulType": "LOCAL", "weightLbs": 44000},
        headers=shipper.headers,
    )

    assert [(r["equipmentType"], r["tier"]) for r in response.json()["recommendations"]] == [
        ("SIDE_DUMP", "OPTIMAL"),
        ("END_DUMP", "ACCEPTABLE"),
    ]

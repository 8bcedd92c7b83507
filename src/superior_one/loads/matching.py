"""Equipment reference data, cached in process, and the equipment recommendation.

The reference tables change only with a migration, so each process reads them
once and keeps them for ``CATALOG_TTL_S`` seconds; a deploy that changes them
restarts the processes anyway.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from superior_one.loads.models import EquipmentTier, HaulType, LoadType
from superior_one.loads.repository import LoadsRepository

CATALOG_TTL_S = 300.0
WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class EquipmentInfo:
    code: str
    name: str
    category: str
    max_payload_lbs: int
    description: str


@dataclass(frozen=True, slots=True)
class MatchRule:
    keyword: str
    load_type: LoadType | None
    haul_type: HaulType | None
    min_weight_lbs: int | None
    max_weight_lbs: int | None
    equipment_code: str
    tier: EquipmentTier
    reason: str

    def applies(
        self, commodity: str, load_type: LoadType, haul_type: HaulType, weight_lbs: int
    ) -> bool:
        return (
            (self.keyword == WILDCARD or self.keyword in commodity)
            and self.load_type in (None, load_type)
            and self.haul_type in (None, haul_type)
            and (self.min_weight_lbs is None or weight_lbs >= self.min_weight_lbs)
            and (self.max_weight_lbs is None or weight_lbs <= self.max_weight_lbs)
        )


@dataclass(frozen=True, slots=True)
class Recommendation:
    equipment: EquipmentInfo
    tier: EquipmentTier
    reason: str


@dataclass(frozen=True, slots=True)
class EquipmentCatalog:
    types: dict[str, EquipmentInfo]
    rules: tuple[MatchRule, ...]

    def recommend(
        self, commodity: str, load_type: LoadType, haul_type: HaulType, weight_lbs: int
    ) -> list[Recommendation]:
        """Return equipment for the load, OPTIMAL before ACCEPTABLE, each with its reason.

        Each equipment type appears once, at the best tier any matching rule
        gives it. Equipment whose payload limit is below the weight is left out.
        """
        text = commodity.lower()
        best: dict[str, Recommendation] = {}
        for rule in self.rules:
            if not rule.applies(text, load_type, haul_type, weight_lbs):
                continue
            equipment = self.types[rule.equipment_code]
            if weight_lbs > equipment.max_payload_lbs:
                continue
            current = best.get(rule.equipment_code)
            if current is None or (
                current.tier is EquipmentTier.ACCEPTABLE and rule.tier is EquipmentTier.OPTIMAL
            ):
                best[rule.equipment_code] = Recommendation(equipment, rule.tier, rule.reason)
        order = {EquipmentTier.OPTIMAL: 0, EquipmentTier.ACCEPTABLE: 1}
        return sorted(best.values(), key=lambda r: order[r.tier])


class EquipmentCatalogCache:
    """The process's copy of the equipment reference data."""

    def __init__(self, ttl_s: float = CATALOG_TTL_S) -> None:
        self._ttl_s = ttl_s
        self._catalog: EquipmentCatalog | None = None
        self._loaded_at = 0.0

    async def get(self, session: AsyncSession) -> EquipmentCatalog:
        if self._catalog is None or time.monotonic() - self._loaded_at > self._ttl_s:
            self._catalog = await load_catalog(session)
            self._loaded_at = time.monotonic()
        return self._catalog


async def load_catalog(session: AsyncSession) -> EquipmentCatalog:
    repository = LoadsRepository(session)
    types = {
        t.code: EquipmentInfo(t.code, t.name, t.category, t.max_payload_lbs, t.description)
        for t in await repository.equipment_types()
    }
    rules = tuple(
        MatchRule(
            keyword=r.commodity_keyword.lower(),
            load_type=r.load_type,
            haul_type=r.haul_type,
            min_weight_lbs=r.min_weight_lbs,
            max_weight_lbs=r.max_weight_lbs,
            equipment_code=r.equipment_code,
            tier=r.tier,
            reason=r.reason,
        )
        for r in await repository.equipment_rules()
    )
    return EquipmentCatalog(types=types, rules=rules)

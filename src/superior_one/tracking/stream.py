"""The GPS buffer in Redis: the stream of accepted fixes, recent fixes per driver, live positions.

Keys (all under the settings' namespace; ``{...}`` is a Redis Cluster hash tag):

- ``gps:stream``: one stream entry per ingest request, holding up to 500 fixes.
  The api appends; gps-consumers read it in one consumer group and delete each
  entry once its fixes are in PostgreSQL.
- ``gps:recent:{<driver>}``: sorted set of the driver's latest accepted fixes
  (score: fix time in microseconds), for the duplicate and implied-speed checks
  of the next request, and ``gps:clientids:{<driver>}``, their client fix ids.
  Capped and expiring, so idle drivers cost nothing.

The api reads and writes those with one Lua script call each. NOTE: the stream
and a driver's keys hash to different Redis Cluster slots, so on a cluster the
append script must be split (or the stream sharded by driver); one Redis is
assumed here.
- ``gps:pos:{<carrier>}`` (GEO) and ``gps:posmeta:{<carrier>}`` (hash): each
  truck's latest position by fix time, and that fix's details.

A stream entry is ``{"p": <JSON>}`` with short keys, see :func:`encode_entry`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from superior_one.config import Settings
from superior_one.redis import key
from superior_one.tracking.fixes import Fix
from superior_one.tracking.rules import validation_rules_from_settings
from superior_one.tracking.validation import StoredFix

ENTRY_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Only a fix newer (by fix time) than the stored one moves a truck; a late
# fix from a dead zone must not. Runs atomically per truck.
_UPDATE_POSITION = """
local current = redis.call('HGET', KEYS[2], ARGV[1])
if current then
  local stored = tonumber(string.sub(current, 1, string.find(current, '|', 1, true) - 1))
  if stored >= tonumber(ARGV[4]) then
    return 0
  end
end
redis.call('GEOADD', KEYS[1], ARGV[2], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4] .. '|' .. ARGV[5])
return 1
"""


# What validation needs to know of a driver's history, in one command: fixes at
# or after the request's earliest fix time (duplicates by time, and the fixes a
# late batch goes before), the one fix just before it (implied speed), and which
# of the request's client fix ids were seen. KEYS: recent, client ids.
# ARGV: earliest micros (or ""), then the client fix ids.
_READ_CONTEXT = """
local after, before = {}, {}
if ARGV[1] ~= '' then
  after = redis.call('ZRANGE', KEYS[1], ARGV[1], '+inf', 'BYSCORE', 'LIMIT', 0, 1000)
  before = redis.call('ZRANGE', KEYS[1], '(' .. ARGV[1], '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1)
end
local seen = {}
if #ARGV > 1 then
  local scores = redis.call('ZMSCORE', KEYS[2], unpack(ARGV, 2))
  for i, score in ipairs(scores) do
    if score then seen[#seen + 1] = ARGV[i + 1] end
  end
end
return {after, before, seen}
"""

# Buffer one request's accepted fixes, in one command: the stream entry first,
# then the driver's recent fixes and client fix ids, capped and expiring.
# KEYS: stream, recent, client ids. ARGV: payload, cap, ttl, count of fixes n,
# then n (micros, member) pairs, then (micros, client fix id) pairs.
_APPEND = """
local id = redis.call('XADD', KEYS[1], '*', 'p', ARGV[1])
local cap, ttl, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local members = {}
for i = 0, n - 1 do
  members[#members + 1] = ARGV[5 + 2 * i]
  members[#members + 1] = ARGV[6 + 2 * i]
end
redis.call('ZADD', KEYS[2], unpack(members))
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(cap + 1))
redis.call('EXPIRE', KEYS[2], ttl)
local first_id = 5 + 2 * n
if #ARGV >= first_id then
  redis.call('ZADD', KEYS[3], unpack(ARGV, first_id))
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(cap + 1))
  redis.call('EXPIRE', KEYS[3], ttl)
end
return id
"""


def to_micros(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    seconds, micros = divmod(int(value), 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


@dataclass(frozen=True, slots=True)
class BufferedFix:
    """An accepted fix with the load and the people it belongs to."""

    load_id: uuid.UUID
    driver_user_id: uuid.UUID
    carrier_organization_id: uuid.UUID
    sender_user_id: uuid.UUID
    received_at: datetime
    fix: Fix


@dataclass(frozen=True, slots=True)
class StreamEntry:
    entry_id: bytes
    fixes: tuple[BufferedFix, ...]


@dataclass(frozen=True, slots=True)
class RecentFixes:
    """A driver's stored fixes around a request's fix times, as validation needs them."""

    fix_times: frozenset[datetime]
    client_fix_ids: frozenset[str]
    neighbours: tuple[StoredFix, ...]


def encode_entry(fixes: Sequence[BufferedFix]) -> bytes:
    """Encode one request's fixes as a compact JSON document (they share load and people)."""
    first = fixes[0]
    return orjson.dumps(
        {
            "v": ENTRY_VERSION,
            "l": str(first.load_id),
            "d": str(first.driver_user_id),
            "c": str(first.carrier_organization_id),
            "s": str(first.sender_user_id),
            "r": to_micros(first.received_at),
            "f": [
                [
                    to_micros(b.fix.fix_time),
                    b.fix.lat,
                    b.fix.lng,
                    b.fix.accuracy_m,
                    b.fix.speed_mps,
                    b.fix.heading_deg,
                    b.fix.source,
                    b.fix.client_fix_id,
                ]
                for b in fixes
            ],
        }
    )


def decode_entry(entry_id: bytes, payload: bytes) -> StreamEntry:
    """Parse an entry written by :func:`encode_entry`; raises ``ValueError`` when malformed."""
    try:
        data = orjson.loads(payload)
        if data["v"] != ENTRY_VERSION:
            raise ValueError(f"unknown entry version {data['v']!r}")
        load_id = uuid.UUID(data["l"])
        driver = uuid.UUID(data["d"])
        carrier = uuid.UUID(data["c"])
        sender = uuid.UUID(data["s"])
        received_at = from_micros(data["r"])
        fixes = tuple(
            BufferedFix(
                load_id=load_id,
                driver_user_id=driver,
                carrier_organization_id=carrier,
                sender_user_id=sender,
                received_at=received_at,
                fix=Fix(
                    fix_id=f"{driver}/{t}",
                    fix_time=from_micros(t),
                    lat=lat,
                    lng=lng,
                    accuracy_m=accuracy,
                    speed_mps=speed,
                    heading_deg=heading,
                    source=source,
                    client_fix_id=client_fix_id,
                ),
            )
            for t, lat, lng, accuracy, speed, heading, source, client_fix_id in data["f"]
        )
    except (KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"malformed GPS stream entry {entry_id!r}: {exc}") from exc
    return StreamEntry(entry_id=entry_id, fixes=fixes)


def _recent_member(fix: Fix) -> str:
    # "<micros>|<lat>|<lng>|<accuracy>"; the score repeats the time.
    return f"{to_micros(fix.fix_time)}|{fix.lat!r}|{fix.lng!r}|{fix.accuracy_m or 0.0!r}"


def _parse_recent(member: bytes) -> StoredFix:
    # Extra fields after the fourth are ignored, so members can grow a field later.
    micros, lat, lng, accuracy = member.decode().split("|")[:4]
    return StoredFix(from_micros(int(micros)), float(lat), float(lng), float(accuracy))


class GpsStream:
    """Everything the api and the gps-consumer do with Redis, on the process's client."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.stream_key = key(settings, "gps", "stream")
        self.group = settings.gps_consumer_group
        self._update_position = redis.register_script(_UPDATE_POSITION)
        self._read_context = redis.register_script(_READ_CONTEXT)
        self._append = redis.register_script(_APPEND)

    def recent_key(self, driver_user_id: uuid.UUID) -> str:
        return key(self.settings, "gps", "recent", f"{{{driver_user_id}}}")

    def client_ids_key(self, driver_user_id: uuid.UUID) -> str:
        return key(self.settings, "gps", "clientids", f"{{{driver_user_id}}}")

    def positions_key(self, carrier_organization_id: uuid.UUID) -> str:
        return key(self.settings, "gps", "pos", f"{{{carrier_organization_id}}}")

    def position_details_key(self, carrier_organization_id: uuid.UUID) -> str:
        return key(self.settings, "gps", "posmeta", f"{{{carrier_organization_id}}}")

    # --- api side ---

    async def recent_fixes(
        self,
        driver_user_id: uuid.UUID,
        earliest: datetime | None,
        client_fix_ids: Sequence[str] = (),
    ) -> RecentFixes:
        """Read what validation needs of the driver's history, in one round trip."""
        after, before, seen = await self._read_context(
            keys=[self.recent_key(driver_user_id), self.client_ids_key(driver_user_id)],
            args=[str(to_micros(earliest)) if earliest is not None else "", *client_fix_ids],
        )
        neighbours = [_parse_recent(member) for member in (*after, *before)]
        return RecentFixes(
            fix_times=frozenset(n.fix_time for n in neighbours),
            client_fix_ids=frozenset(_text(c) for c in seen),
            neighbours=tuple(neighbours),
        )

    async def append(self, fixes: Sequence[BufferedFix]) -> bytes:
        """Buffer one request's accepted fixes; returns the stream entry id.

        The entry goes first: if Redis fails after it, the fixes are buffered
        and a later duplicate is caught by PostgreSQL's unique key.
        """
        driver = fixes[0].driver_user_id
        args: list[str | bytes | int] = [
            encode_entry(fixes),
            self.settings.gps_recent_fixes_per_driver,
            _recent_ttl_s(self.settings),
            len(fixes),
        ]
        for b in fixes:
            args += [to_micros(b.fix.fix_time), _recent_member(b.fix)]
        for b in fixes:
            if b.fix.client_fix_id is not None:
                args += [to_micros(b.fix.fix_time), b.fix.client_fix_id]
        entry_id: bytes = await self._append(
            keys=[self.stream_key, self.recent_key(driver), self.client_ids_key(driver)],
            args=args,
        )
        return entry_id

    # --- consumer side ---

    async def ensure_group(self) -> None:
        """Create the consumer group (from the stream's first entry) if it does not exist."""
        try:
            await self.redis.xgroup_create(self.stream_key, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read_new(
        self, consumer: str, count: int, block_ms: int | None
    ) -> list[tuple[bytes, bytes]]:
        """Entries never delivered to the group, now owned by ``consumer``; waits up to
        ``block_ms`` for one to arrive (None: returns at once)."""
        reply = await self.redis.xreadgroup(
            self.group, consumer, {self.stream_key: ">"}, count=count, block=block_ms
        )
        return _entries(reply)

    async def claim_stale(
        self, consumer: str, min_idle_ms: int, count: int
    ) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
        """Take over entries another consumer read but did not acknowledge in time.

        Returns the claimed entries and the ids of pending entries that no longer
        exist (to acknowledge). Walks the whole pending list, ``count`` at a time.
        """
        claimed: list[tuple[bytes, bytes]] = []
        deleted: list[bytes] = []
        start: bytes | str = "0-0"
        while True:
            reply = await self.redis.xautoclaim(
                self.stream_key, self.group, consumer, min_idle_ms, start_id=start, count=count
            )
            next_start, messages = reply[0], reply[1]
            claimed.extend(_messages(messages))
            if len(reply) > 2:
                deleted.extend(reply[2])
            if next_start in (b"0-0", "0-0") or len(claimed) >= count:
                return claimed, deleted
            start = next_start

    async def acknowledge(self, entry_ids: Sequence[bytes]) -> None:
        """Acknowledge and delete entries whose fixes are committed to PostgreSQL."""
        if not entry_ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(self.stream_key, self.group, *entry_ids)
            pipe.xdel(self.stream_key, *entry_ids)
            await pipe.execute()

    async def forget_idle_consumers(self, keep: str, idle_ms: int) -> list[str]:
        """Remove consumers that own no pending entry and have been silent for ``idle_ms``."""
        removed: list[str] = []
        for info in await self.redis.xinfo_consumers(self.stream_key, self.group):
            name = _text(info["name"])
            if name != keep and int(info["pending"]) == 0 and int(info["idle"]) > idle_ms:
                await self.redis.xgroup_delconsumer(self.stream_key, self.group, name)
                removed.append(name)
        return removed

    async def backlog(self) -> tuple[int, int]:
        """Return the stream's length and the group's undelivered entries (its lag)."""
        length = int(await self.redis.xlen(self.stream_key))  # 0 for a missing stream
        if length == 0:
            return 0, 0  # XINFO GROUPS would fail on a stream that does not exist yet
        lag = length  # without the group (no consumer started yet) nothing was delivered
        for group in await self.redis.xinfo_groups(self.stream_key):
            if _text(group["name"]) == self.group:
                lag = int(group.get("lag") or 0)
        return length, lag

    async def update_positions(self, fixes: Iterable[BufferedFix]) -> int:
        """Move each truck to its newest fix in ``fixes`` unless Redis has a newer one."""
        newest: dict[uuid.UUID, BufferedFix] = {}
        for buffered in fixes:
            current = newest.get(buffered.driver_user_id)
            if current is None or buffered.fix.fix_time > current.fix.fix_time:
                newest[buffered.driver_user_id] = buffered
        if not newest:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for buffered in newest.values():
                fix = buffered.fix
                details = orjson.dumps(
                    {
                        "load": str(buffered.load_id),
                        # Exact: the GEO set keeps positions to about 0.6 m.
                        "lat": fix.lat,
                        "lng": fix.lng,
                        "acc": fix.accuracy_m,
                        "spd": fix.speed_mps,
                        "hdg": fix.heading_deg,
                    }
                ).decode()
                await self._update_position(
                    keys=[
                        self.positions_key(buffered.carrier_organization_id),
                        self.position_details_key(buffered.carrier_organization_id),
                    ],
                    args=[
                        str(buffered.driver_user_id),
                        fix.lng,
                        fix.lat,
                        to_micros(fix.fix_time),
                        details,
                    ],
                    client=pipe,
                )
            replies = await pipe.execute()
        return sum(int(r) for r in replies)

    async def positions_near(
        self,
        carrier_organization_id: uuid.UUID,
        lat: float,
        lng: float,
        radius_m: float,
        count: int,
    ) -> list[tuple[str, float, float]]:
        """Trucks of a carrier within ``radius_m`` (Redis's spherical distance), nearest
        first: ``(driver id, lat, lng)``. Callers re-measure on the WGS84 ellipsoid."""
        reply: list[Any] = await self.redis.geosearch(
            self.positions_key(carrier_organization_id),
            longitude=lng,
            latitude=lat,
            radius=radius_m,
            unit="m",
            sort="ASC",
            count=count,
            withcoord=True,
        )
        found: list[tuple[str, float, float]] = []
        for member, coord in reply:  # [member, [lng, lat]]
            found.append((_text(member), float(coord[1]), float(coord[0])))
        return found

    async def position_details(
        self, carrier_organization_id: uuid.UUID, driver_ids: Sequence[str]
    ) -> dict[str, tuple[datetime, dict[str, Any]]]:
        if not driver_ids:
            return {}
        values = await self.redis.hmget(
            self.position_details_key(carrier_organization_id), list(driver_ids)
        )
        details: dict[str, tuple[datetime, dict[str, Any]]] = {}
        for driver_id, raw in zip(driver_ids, values, strict=True):
            if raw is None:
                continue
            micros, payload = _text(raw).split("|", 1)
            details[driver_id] = (from_micros(int(micros)), orjson.loads(payload))
        return details


def _recent_ttl_s(settings: Settings) -> int:
    # As long as a fix can be accepted at all, plus a day of margin.
    return int(validation_rules_from_settings(settings).max_age_s) + 86_400


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _messages(messages: Iterable[Any]) -> list[tuple[bytes, bytes]]:
    entries: list[tuple[bytes, bytes]] = []
    for entry_id, fields in messages:
        if fields is None:
            continue  # deleted after it was read; acknowledged by the caller
        payload = fields.get(b"p", b"") if isinstance(fields, Mapping) else b""
        entries.append((entry_id, payload))
    return entries


def _entries(reply: Any) -> list[tuple[bytes, bytes]]:
    if not reply:
        return []
    if isinstance(reply, Mapping):  # RESP3
        return [entry for messages in reply.values() for entry in _messages(messages[0])]
    return [entry for _stream, messages in reply for entry in _messages(messages)]

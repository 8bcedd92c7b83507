"""Benchmark: road routes, the ZIP index, fix validation and the geofence engine, in process.

No database or server: these are the pure functions the seeder, the GPS
consumer and the fleet simulator call. Writes bench/results/geo.json.

    .venv/bin/python -m bench.geo            # about 30 seconds
    .venv/bin/python -m bench.geo --quick    # about 10 seconds
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from bench.common import RESULTS_DIR, machine_description, now_iso
from superior_one.geo.geodesy import LatLng
from superior_one.geo.roads import road_network
from superior_one.geo.zips import lookup_zip, seed_pool
from superior_one.tracking.fixes import Fix
from superior_one.tracking.geofence import GeofenceState, StopFence, StopKind, process_fixes
from superior_one.tracking.validation import GpsFixIn, ValidationContext, validate_fixes

ROUTES = {
    "seattle_portland": (LatLng(47.6062, -122.3321), LatLng(45.5152, -122.6784)),
    "chicago_indianapolis": (LatLng(41.8781, -87.6298), LatLng(39.7684, -86.1581)),
    "new_york_los_angeles": (LatLng(40.7128, -74.0060), LatLng(34.0522, -118.2437)),
}


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _percentiles_ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 3),
    }


def _synthetic_track(count: int) -> list[Fix]:
    # A truck crossing a pickup fence, stopping, and leaving, repeated.
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rng = random.Random(3)
    return [
        Fix(
            fix_id=f"f{i}",
            fix_time=t0 + timedelta(seconds=30 * i),
            lat=41.525 + 0.01 * ((i % 40) - 20) / 20 + rng.gauss(0, 0.0001),
            lng=-88.0817,
            accuracy_m=10.0,
            speed_mps=0.0 if i % 40 in range(18, 23) else 15.0,
        )
        for i in range(count)
    ]


def run(quick: bool) -> dict[str, Any]:
    repeats = 20 if quick else 100
    results: dict[str, Any] = {"machine": machine_description(), "at": now_iso(), "quick": quick}

    results["road_graph_load_s"] = round(_timed(road_network), 3)
    network = road_network()
    for name, (origin, destination) in ROUTES.items():
        route = network.route(origin, destination)
        samples = [_timed(partial(network.route, origin, destination)) for _ in range(repeats)]
        results[f"route_{name}"] = _percentiles_ms(samples) | {
            "miles": round(route.miles, 1),
            "points": len(route.points),
        }

    results["zip_index_first_lookup_s"] = round(_timed(lambda: lookup_zip("98101")), 3)
    results["seed_pool_build_s"] = round(_timed(seed_pool), 3)
    size = 50 if quick else 200
    sample = [p.point for p in random.Random(1).sample(seed_pool(), size)]
    matrix_s = _timed(lambda: network.miles_matrix(sample, sample))
    results["miles_matrix"] = {
        "size": size,
        "seconds": round(matrix_s, 3),
        "pairs_per_s": round(size * size / matrix_s),
    }

    fix_count = 2_000 if quick else 20_000
    track = _synthetic_track(fix_count)
    state = GeofenceState.start(
        "bench",
        [
            StopFence(stop_id="p", kind=StopKind.PICKUP, center=(41.525, -88.0817)),
            StopFence(stop_id="d", kind=StopKind.DELIVERY, center=(39.7684, -86.1581)),
        ],
    )
    engine_s = _timed(lambda: process_fixes(state, track))
    results["geofence_fixes_per_s"] = round(fix_count / engine_s)

    incoming = [
        GpsFixIn(
            latitude=f.lat,
            longitude=f.lng,
            fix_time=f.fix_time,
            accuracy_m=10.0,
            speed_mps=f.speed_mps,
        )
        for f in track[:500]
    ]
    context = ValidationContext(driver_id="bench", now=track[499].fix_time)
    batch_s = [_timed(lambda: validate_fixes(incoming, context)) for _ in range(repeats // 4 or 1)]
    results["validate_batch_500"] = _percentiles_ms(batch_s)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()

    results = run(args.quick)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "geo.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Commands: ``superior-one gps-consumer``, ``simulate-fleet`` and ``replay-track``.

The fleet simulator and the replay are development tools that live in
``superior_one.simulators``; production processes never load that package, so
these commands import it only when they run.
"""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import Annotated, Any

import typer

from superior_one.config import get_settings
from superior_one.observability import setup_observability


def gps_consumer_command(
    name: Annotated[
        str | None, typer.Option(help="Consumer name in the group; default: host and PID.")
    ] = None,
    batch_entries: Annotated[
        int | None, typer.Option(min=1, help="Stream entries per batch; default: settings.")
    ] = None,
) -> None:
    """Move buffered GPS fixes into PostgreSQL and run the geofences, until Ctrl-C or SIGTERM."""
    from superior_one.tracking.consumer import run_gps_consumer

    settings = get_settings()
    setup_observability(settings, service_name="superior-one-gps-consumer")
    asyncio.run(run_gps_consumer(settings, name=name, batch_entries=batch_entries))


def _simulator() -> Any:
    return importlib.import_module("superior_one.simulators.fleet")


def simulate_fleet_command(
    trucks: Annotated[int, typer.Option(min=1, max=20_000, help="Trucks to drive.")] = 100,
    interval: Annotated[
        float, typer.Option(min=1.0, help="Seconds between two fixes of one truck.")
    ] = 30.0,
    duration: Annotated[
        float, typer.Option(min=10.0, help="Stop after this many seconds, done or not.")
    ] = 900.0,
    api_url: Annotated[
        str, typer.Option(help="Base URL of the api (loopback only).")
    ] = "http://127.0.0.1:8000",
    trip_km: Annotated[
        tuple[float, float], typer.Option(help="Range of freeway kilometres per trip.")
    ] = (4.0, 8.0),
    dead_zone_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of trucks that cross a dead zone.")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="Random seed (routes, noise, dead zones).")] = 7,
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="Loads covered through the api at once.")
    ] = 24,
    payments: Annotated[
        bool | None,
        typer.Option(
            "--payments/--no-payments",
            help="Charge the invoices of confirmed loads; default: when the api has a "
            "payment provider (scripts/run.sh starts the payment simulator).",
            show_default=False,
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write the final summary as JSON to this file.")
    ] = None,
) -> None:
    """Run loads through the api end to end: cover, drive with noisy GPS, confirm, pay.

    Creates a shipper and a carrier with one driver per truck; the carrier is
    verified by the worker against FMCSA. Through the api, the shipper posts one
    load per truck (pickup window open now), the carrier books it and releases it
    to the driver. Each truck drives to its pickup, dwells, takes the freeway to
    its delivery and dwells there. Trucks in a dead zone keep their fixes and send
    them late as one batch. The shipper confirms delivered loads and pays their
    invoices. Needs the api, the worker and the gps-consumer (scripts/run.sh).
    """
    _simulator().simulate_fleet_cli(
        get_settings(),
        trucks=trucks,
        interval_s=interval,
        duration_s=duration,
        api_url=api_url,
        trip_km=trip_km,
        dead_zone_share=dead_zone_share,
        seed=seed,
        concurrency=concurrency,
        payments=payments,
        report=report,
    )


def replay_track_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A recorded drive.")],
    api_url: Annotated[
        str, typer.Option(help="Base URL of the api (loopback only).")
    ] = "http://127.0.0.1:8000",
    every: Annotated[
        float, typer.Option(min=1.0, help="Keep one fix per this many seconds, like a phone.")
    ] = 30.0,
    wait: Annotated[
        float, typer.Option(min=0.0, help="Seconds to wait for the geofence decisions.")
    ] = 20.0,
) -> None:
    """Replay a recorded drive (Newson-Krumm format) as one truck's catch-up upload.

    The drive is moved in time to end a minute ago, a load from its first to its
    last position is covered through the api (needs the worker, which verifies
    the carrier), and its fixes are posted in batches.
    """
    _simulator().replay_track_cli(get_settings(), file, api_url=api_url, every_s=every, wait_s=wait)

"""Operator commands of the loads domain: demo data and load expiry."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from superior_one.config import get_settings
from superior_one.loads.cache import BoardCache
from superior_one.loads.seed import SeedOptions, seed
from superior_one.loads.service import expire_posted_loads
from superior_one.resources import open_resources

console = Console()


def seed_command(
    loads: Annotated[int, typer.Option("--loads", min=1, help="Number of loads to create.")] = 5000,
    seed_value: Annotated[
        int, typer.Option("--seed", help="Random seed (same seed, same data).")
    ] = 2026,
    demo_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of loads posted by shipper@demo.example and carried by the demo carrier "
            "(needs seed-demo-accounts first).",
        ),
    ] = 0.0,
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing when loads already exist.")
    ] = False,
) -> None:
    """Create shippers, carriers, drivers and loads between real US ZIP codes."""
    settings = get_settings()
    options = SeedOptions(loads=loads, seed=seed_value, demo_share=demo_share, if_empty=if_empty)
    with Progress(
        TextColumn("{task.description:<7}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        report = asyncio.run(seed(settings, options, progress))
    if report.skipped:
        console.print("Loads already exist; nothing seeded (--if-empty).")
        return
    console.print(
        f"Seeded {report.loads:,} loads ({report.posted:,} posted) on {report.lanes:,} lanes, "
        f"{report.shippers} shippers, {report.carriers} carriers, {report.drivers} drivers, "
        f"{report.interests:,} carrier interests."
    )


def expire_loads_command() -> None:
    """Expire posted loads whose pickup window has ended (the periodic job does the same)."""

    async def run() -> int:
        settings = get_settings()
        async with open_resources(settings, pool_size=1) as resources:
            cache = BoardCache(resources.redis, settings)
            return await expire_posted_loads(resources.sessionmaker, cache)

    console.print(f"Expired {asyncio.run(run())} loads.")

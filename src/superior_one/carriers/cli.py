"""Commands: ``superior-one carriers import-revocations FILE`` and ``seed-demo``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from superior_one.carriers.revocations import ImportReport, import_revocations
from superior_one.config import get_settings
from superior_one.db import unit_of_work
from superior_one.integrations.fmcsa.revocations import RevocationFileError, read_revocation_file
from superior_one.resources import open_resources

console = Console()
carriers_cli = typer.Typer(help="Carrier vetting operations.", no_args_is_help=True)


@carriers_cli.command("import-revocations")
def import_revocations_command(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="FMCSA revocation file."),
    ],
) -> None:
    """Flag the carriers that FMCSA's daily revocation file revokes (safe to repeat)."""
    try:
        report = asyncio.run(_import(file))
    except RevocationFileError as exc:
        console.print(f"[red]{file} is not an FMCSA revocation file:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"Read {report.rows} revocations ({report.bad_lines} unreadable lines); "
        f"{report.matched_carriers} match our carriers, {report.newly_flagged} newly flagged."
    )


async def _import(file: Path) -> ImportReport:
    async with (
        open_resources(get_settings(), pool_size=1) as resources,
        unit_of_work(resources.sessionmaker) as session,
    ):
        return await import_revocations(session, read_revocation_file(file))


@carriers_cli.command("seed-demo")
def seed_demo() -> None:
    """Give the demo carrier organization a USDOT number and a policy (idempotent)."""
    from superior_one.carriers.demo import seed_demo_carrier

    carrier = asyncio.run(seed_demo_carrier(get_settings()))
    if carrier is None:
        console.print("[red]No demo carrier organization;[/red] run 'seed-demo-accounts' first.")
        raise typer.Exit(1)
    console.print(
        f"demo carrier: USDOT {carrier.dot_number} ({carrier.verification_status}); "
        "the worker verifies it against FMCSA."
    )

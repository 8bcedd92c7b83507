"""The ``superior-one`` command line: serve, migrate, create-admin and domain commands.

Each command that needs the database or Redis opens one :class:`Resources` for
its own duration, like any other process.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from superior_one.carriers.cli import carriers_cli
from superior_one.config import get_settings
from superior_one.jobs.cli import jobs_cli, worker_command
from superior_one.loads.cli import expire_loads_command, seed_command
from superior_one.observability.logging import configure_logging
from superior_one.observability.multiprocess import MULTIPROC_ENV
from superior_one.payments.cli import payments_cli
from superior_one.tracking.cli import (
    gps_consumer_command,
    replay_track_command,
    simulate_fleet_command,
)

app = typer.Typer(
    name="superior-one",
    help="Superior One Logistics platform: api server, workers and operations commands.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console()

app.command("seed")(seed_command)
app.command("expire-loads")(expire_loads_command)

app.command("worker")(worker_command)
app.add_typer(jobs_cli, name="jobs")
app.add_typer(carriers_cli, name="carriers")
app.add_typer(payments_cli, name="payments")
app.command("gps-consumer")(gps_consumer_command)
app.command("simulate-fleet")(simulate_fleet_command)
app.command("replay-track")(replay_track_command)


@app.callback()
def main() -> None:
    settings = get_settings()
    configure_logging(level=settings.log_level, json=settings.log_json)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Number of api processes.")] = 1,
    server: Annotated[
        str, typer.Option(help="ASGI server: 'granian' (production) or 'uvicorn' (development).")
    ] = "granian",
) -> None:
    """Run the api server."""
    _ensure_port_free(host, port)
    if MULTIPROC_ENV not in os.environ:
        # Metrics are already imported in single-process mode here, and the
        # server's workers inherit that. Start again with a fresh shared metrics
        # directory so the workers' samples add up on /metrics.
        metrics_dir = Path(tempfile.gettempdir()) / f"superior-one-metrics-{port}"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ[MULTIPROC_ENV] = str(metrics_dir)
        os.execv(  # noqa: S606 - re-runs this same command line
            sys.executable, [sys.executable, "-m", "superior_one", *sys.argv[1:]]
        )

    if server == "uvicorn":
        import uvicorn

        uvicorn.run(
            "superior_one.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,
            log_config=None,
        )
        return
    if server != "granian":
        raise typer.BadParameter("use 'granian' or 'uvicorn'", param_hint="--server")

    from granian.constants import Interfaces
    from granian.server import Server

    Server(
        "superior_one.app:create_app",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        factory=True,
        log_access=False,
    ).serve()


def _ensure_port_free(host: str, port: int) -> None:
    # granian binds with SO_REUSEPORT, so a second server on a busy port would
    # start without error and silently split the traffic with the first.
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # Connections of a server stopped a moment ago (TIME_WAIT) must not count as
        # busy; a listening socket still does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise typer.BadParameter(
                f"{host}:{port} is already in use ({exc.strerror}); stop the other server "
                "or choose another port",
                param_hint="--port",
            ) from exc


@app.command()
def migrate() -> None:
    """Apply all pending database migrations."""
    from superior_one.migrate import upgrade_to_heads

    upgrade_to_heads(get_settings())
    console.print("[green]Database migrated to head.[/green]")


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="Login email of the platform administrator.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, help="At least 12 characters."
        ),
    ],
) -> None:
    """Create a platform administrator (and the platform organization if missing)."""
    from superior_one.accounts.bootstrap import create_platform_admin

    if len(password) < 12:
        raise typer.BadParameter("must be at least 12 characters", param_hint="--password")
    user_id = asyncio.run(create_platform_admin(get_settings(), email, password))
    console.print(f"Platform administrator {email} ready (user id {user_id}).")


@app.command("seed-demo-accounts")
def seed_demo_accounts_command() -> None:
    """Create the demo organizations and accounts (idempotent)."""
    from superior_one.demo import seed_demo_accounts

    settings = get_settings()
    emails = asyncio.run(seed_demo_accounts(settings))
    for email in emails:
        console.print(f"demo account: {email}")

"""Commands: ``superior-one worker`` and ``superior-one jobs failed|retry``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import orjson
import typer
from rich.console import Console

from superior_one.config import get_settings
from superior_one.db import unit_of_work
from superior_one.jobs import repository
from superior_one.jobs.app import app as job_app
from superior_one.jobs.app import job_queue_connector
from superior_one.resources import open_resources

console = Console()
jobs_cli = typer.Typer(
    help="Inspect failed background jobs and run them again.", no_args_is_help=True
)


def worker_command(
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", "-q", help="Queue to take jobs from (repeat it); default: all."),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Jobs run at the same time; default: settings.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Worker name shown in logs.")] = None,
) -> None:
    """Run background jobs and the periodic schedule until stopped with Ctrl-C or SIGTERM."""
    from superior_one.jobs.worker import run_worker

    asyncio.run(run_worker(get_settings(), queues=queue, concurrency=concurrency, name=name))


@jobs_cli.command("failed")
def list_failed(
    queue: Annotated[str | None, typer.Option(help="Only jobs of this queue.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Jobs to show.")] = 50,
) -> None:
    """List failed jobs, newest first, with the error that failed them."""
    jobs = asyncio.run(_failed(queue, limit))
    if not jobs:
        console.print("No failed jobs.")
        return
    # One line per job, unwrapped, so it can be read in a log or piped to grep.
    for job in jobs:
        error = f"{job.error_type}: {job.error_message}" if job.error_type else "(not recorded)"
        failed_at = job.failed_at.isoformat(timespec="seconds") if job.failed_at else "?"
        console.print(
            f"{job.id}\t{job.task_name}\tqueue={job.queue_name}\tattempts={job.attempts}"
            f"\tfailed_at={failed_at}\t{error}\targs={orjson.dumps(job.args).decode()}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )


@jobs_cli.command("retry")
def retry(job_id: Annotated[int, typer.Argument(help="Id of a failed job.")]) -> None:
    """Put a failed job back in its queue; it runs once more with its arguments."""
    status = asyncio.run(_retry(job_id))
    if status is None:
        console.print(f"[red]No job with id {job_id}.[/red] List failed jobs with 'jobs failed'.")
        raise typer.Exit(1)
    if status != "failed":
        console.print(
            f"[red]Job {job_id} is {status}, not failed;[/red] only failed jobs can be retried."
        )
        raise typer.Exit(1)
    console.print(f"Job {job_id} is back in its queue.")


async def _failed(queue: str | None, limit: int) -> list[repository.FailedJob]:
    async with (
        open_resources(get_settings(), pool_size=1) as resources,
        unit_of_work(resources.sessionmaker) as session,
    ):
        return await repository.list_failed_jobs(session, queue=queue, limit=limit)


async def _retry(job_id: int) -> str | None:
    async with open_resources(get_settings(), pool_size=1, job_queue_pool_size=1) as resources:
        async with unit_of_work(resources.sessionmaker) as session:
            status = await repository.job_status(session, job_id)
        if status == "failed":
            with job_app.replace_connector(job_queue_connector()):
                async with job_app.open_async(resources.job_queue_pool):
                    await job_app.job_manager.retry_job_by_id_async(
                        job_id=job_id, retry_at=datetime.now(UTC)
                    )
        return status

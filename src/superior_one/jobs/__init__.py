"""Background jobs on Procrastinate (PostgreSQL): queues, deferral, worker, retries."""

from superior_one.jobs.app import Queue, WorkerDeps, app, job_task, worker_deps
from superior_one.jobs.defer import defer, defer_many
from superior_one.jobs.retry import TransientJobError

__all__ = [
    "Queue",
    "TransientJobError",
    "WorkerDeps",
    "app",
    "defer",
    "defer_many",
    "job_task",
    "worker_deps",
]

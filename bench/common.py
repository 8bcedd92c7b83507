"""Helpers shared by the benchmarks: a scratch database, a server process, wrk."""

from __future__ import annotations

import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from superior_one.config import Settings
from superior_one.migrate import upgrade_to_heads

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
ADMIN_DSN = os.environ.get("SO_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def machine_description() -> str:
    cores = os.cpu_count()
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{cores} cores, {memory_gib:.0f} GiB, {platform.platform()}, "
        f"Python {platform.python_version()}"
    )


def load_average() -> list[float]:
    """Return the 1, 5 and 15 minute load averages of this machine."""
    return [round(v, 2) for v in os.getloadavg()]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def fresh_database(name: str) -> str:
    """Drop and recreate database ``name``, migrate it, and return its SQLAlchemy URL."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    upgrade_to_heads(Settings(database_url=url))
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(factory: str, env: dict[str, str], *, workers: int = 1) -> Iterator[str]:
    """Run ``factory`` under granian on a free loopback port; yield its base URL."""
    port = free_port()
    command = [
        sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--no-access-log", factory,
    ]  # fmt: skip
    process = subprocess.Popen(  # noqa: S603 - fixed command line
        command,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"server {factory} did not start")
            time.sleep(0.2)
        yield base_url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def run_wrk(
    url: str, *, seconds: int, connections: int, threads: int = 1, headers: dict[str, str]
) -> dict[str, float]:
    """Run wrk against ``url`` and return requests/s and latency percentiles in ms."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    command = [wrk, "--latency", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(  # noqa: S603 - fixed command line
        [*command, url], capture_output=True, text=True, check=True
    ).stdout
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50_ms": _percentile(output, "50%"),
        "p99_ms": _percentile(output, "99%"),
        "errors": float(_errors(output)),
    }


def _percentile(output: str, label: str) -> float:
    match = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)", output, re.MULTILINE)
    if match is None:
        raise ValueError(f"wrk output has no {label} line")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def _errors(output: str) -> int:
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    total = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        total += sum(int(g) for g in socket_errors.groups())
    return total

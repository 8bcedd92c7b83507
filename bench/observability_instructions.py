"""Benchmark: machine instructions per authenticated request, for each observability variant.

On the shared virtual machine of 2026-12-05, requests per second of one variant
differed by up to 18 % between rounds, more than the 5 % budget being checked. Instruction counts
do not depend on what else runs: this benchmark sends ``GET /auth/whoami``
straight into the ASGI app, in process, under valgrind's callgrind, counting
only the measured requests (collection is switched on after start-up and a
warm-up). The variants are those of ``bench.observability_overhead``; they run
in parallel, since the counts do not depend on load.

    .venv/bin/python -m bench.observability_instructions             # about 5 minutes
    .venv/bin/python -m bench.observability_instructions --requests 100

Needs valgrind (``apt-get install -y valgrind``). Counts are of the CPU's
instructions, not time: a variant that waits more or misses the cache more
costs more time than its count shows. ``bench.observability_overhead`` measures
time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.types import Message

from bench.auth import user_with_token
from bench.common import RESULTS_DIR, ROOT, fresh_database, machine_description, now_iso
from bench.observability_overhead import NAMESPACE, VARIANTS, server_env
from superior_one.config import Settings

WARM_UP_REQUESTS = 300
# The wrk benchmark's variants, and tracing on with nothing recorded: what every
# request pays for tracing, apart from the recorded ones.
COUNTED_VARIANTS = {
    **VARIANTS,
    "traced_0pct": {**VARIANTS["traced_10pct"], "SO_OTEL_SAMPLE_RATIO": "0.0"},
}
ENDPOINTS = ("/auth/whoami", "/me")


async def _child(path: str, token: str, requests: int, signals: Path) -> None:
    """Send the warm-up requests, signal the parent, wait for its go, send the measured ones."""
    from superior_one.app import create_app

    app = create_app()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())],
    }  # fmt: skip
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def wait_for(name: str) -> None:
        # The parent process creates the file: there is no event to wait on.
        while not (signals / name).exists():  # noqa: ASYNC110
            await asyncio.sleep(0.2)

    async with app.router.lifespan_context(app):
        for _ in range(WARM_UP_REQUESTS):
            await app(dict(scope), receive, send)
        (signals / "warm").touch()
        await wait_for("go")
        for _ in range(requests):
            await app(dict(scope), receive, send)
        (signals / "measured").touch()
        await wait_for("stop")
    if set(statuses) != {200}:
        raise SystemExit(f"unexpected statuses {sorted(set(statuses))}")


def _start_variant(
    name: str, env: dict[str, str], path: str, token: str, requests: int
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"so-instructions-{name}-"))
    (work / "metrics").mkdir()
    command = [
        _tool("valgrind"), "--tool=callgrind", "--instr-atstart=no",
        f"--callgrind-out-file={work / 'callgrind.out'}",
        sys.executable, "-m", "bench.observability_instructions", "--child",
        "--path", path, "--token", token, "--requests", str(requests), "--signals", str(work),
    ]  # fmt: skip
    # This checkout's code, even when the venv was installed from another one.
    child_env = {**os.environ, **env, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    child_env["PYTHONHASHSEED"] = "0"
    child_env["PROMETHEUS_MULTIPROC_DIR"] = str(work / "metrics")
    process = subprocess.Popen(  # noqa: S603 - fixed command line
        command,
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=(work / "log").open("w"),
    )
    return {"name": name, "work": work, "process": process, "stage": "warming"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{name} is not installed: apt-get install -y valgrind")
    return path


def _control(pid: int, switch: str) -> None:
    subprocess.run(  # noqa: S603 - fixed command line
        [_tool("callgrind_control"), "-i", switch, str(pid)], check=True, capture_output=True
    )


def _total_instructions(out_file: Path) -> int:
    text = subprocess.run(  # noqa: S603 - fixed command line
        [_tool("callgrind_annotate"), str(out_file)], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"^\s*([\d,]+)\s.*PROGRAM TOTALS", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no totals in {out_file}")
    return int(match.group(1).replace(",", ""))


def _drive(runs: list[dict[str, Any]], timeout_s: float) -> None:
    """Switch each run's collection on after its warm-up and off after its requests."""
    deadline = time.monotonic() + timeout_s
    while any(run["stage"] != "done" for run in runs):
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the callgrind runs")
        for run in runs:
            work, process = run["work"], run["process"]
            if run["stage"] != "done" and process.poll() is not None:
                log_tail = (work / "log").read_text()[-2000:]
                raise SystemExit(f"{run['name']} exited before its requests finished:\n{log_tail}")
            if run["stage"] == "warming" and (work / "warm").exists():
                _control(process.pid, "on")
                (work / "go").touch()
                run["stage"] = "measuring"
            elif run["stage"] == "measuring" and (work / "measured").exists():
                _control(process.pid, "off")
                (work / "stop").touch()
                process.wait(timeout=120)
                run["stage"] = "done"
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="measured requests per variant")
    parser.add_argument("--path", choices=ENDPOINTS, default=ENDPOINTS[0], help="endpoint to count")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--signals", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_child(args.path, args.token, args.requests, args.signals))
        return
    _tool("valgrind")

    database_url = fresh_database("so_bench_observability")
    settings = Settings(database_url=database_url, redis_namespace=NAMESPACE)
    token = user_with_token(settings)
    base_env = server_env(database_url)
    runs = [
        _start_variant(name, {**base_env, **env}, args.path, token, args.requests)
        for name, env in COUNTED_VARIANTS.items()
    ]
    try:
        _drive(runs, timeout_s=1800)
    finally:
        for run in runs:
            if run["process"].poll() is None:
                run["process"].kill()

    per_request = {
        run["name"]: _total_instructions(run["work"] / "callgrind.out") // args.requests
        for run in runs
    }
    for run in runs:
        shutil.rmtree(run["work"], ignore_errors=True)
    result = {
        "date": now_iso(),
        "machine": machine_description(),
        "command": "python -m bench.observability_instructions"
        + (f" --requests {args.requests}" if args.requests != 300 else "")
        + (f" --path {args.path}" if args.path != ENDPOINTS[0] else ""),
        "endpoint": args.path,
        "measured_requests": args.requests,
        "variants": COUNTED_VARIANTS,
        "instructions_per_request": per_request,
        "overhead_vs_off_pct": {
            name: round((count / per_request["off"] - 1) * 100, 1)
            for name, count in per_request.items()
        },
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    name = "observability_instructions" + ("" if args.path == ENDPOINTS[0] else "_me")
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

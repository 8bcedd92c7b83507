"""Benchmark: what metrics, traces and logging cost an authenticated request.

Runs the api under granian on 127.0.0.1 in four configurations side by side and
drives each with wrk, in interleaved rounds so that drift on a shared machine
hits all of them alike:

* ``off``: metrics off, tracing off, log level WARNING (no access line);
* ``default``: the production defaults: metrics on in multiprocess mode, JSON
  access log at INFO, tracing off;
* ``traced_10pct``: as ``default`` plus tracing on at the default sampling ratio
  (one new trace in ten) and no exporter;
* ``full``: as ``default`` plus tracing on with every request sampled and no
  exporter, so spans are created, timed and dropped.

Two endpoints: ``GET /auth/whoami`` (the authentication benchmark's endpoint:
token check and cached principal, no query) and ``GET /me`` (one query, so the
database instrumentation is in the figure too).

    .venv/bin/python -m bench.observability_overhead            # about 6 minutes
    .venv/bin/python -m bench.observability_overhead --quick    # under a minute
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from contextlib import ExitStack
from typing import Any

from bench.auth import user_with_token
from bench.common import (
    RESULTS_DIR,
    fresh_database,
    machine_description,
    now_iso,
    run_wrk,
    server,
)
from superior_one.config import Settings

ENDPOINTS = ("/auth/whoami", "/me")
NAMESPACE = "so-bench-observability"
VARIANTS: dict[str, dict[str, str]] = {
    "off": {
        "SO_METRICS_ENABLED": "false",
        "SO_OTEL_ENABLED": "false",
        "SO_LOG_LEVEL": "WARNING",
    },
    "default": {
        "SO_METRICS_ENABLED": "true",
        "SO_OTEL_ENABLED": "false",
        "SO_LOG_LEVEL": "INFO",
        "SO_LOG_JSON": "true",
    },
    "traced_10pct": {
        "SO_METRICS_ENABLED": "true",
        "SO_OTEL_ENABLED": "true",
        "SO_OTEL_SAMPLE_RATIO": "0.1",
        "SO_OTEL_EXPORTER_OTLP_ENDPOINT": "",
        "SO_LOG_LEVEL": "INFO",
        "SO_LOG_JSON": "true",
    },
    "full": {
        "SO_METRICS_ENABLED": "true",
        "SO_OTEL_ENABLED": "true",
        "SO_OTEL_SAMPLE_RATIO": "1.0",
        "SO_OTEL_EXPORTER_OTLP_ENDPOINT": "",
        "SO_LOG_LEVEL": "INFO",
        "SO_LOG_JSON": "true",
    },
}


def server_env(database_url: str) -> dict[str, str]:
    """Return the environment every variant's api shares."""
    return {
        "SO_DATABASE_URL": database_url,
        "SO_REDIS_NAMESPACE": NAMESPACE,
        "SO_ACCESS_TOKEN_TTL_S": "3600",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter run, under a minute")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (full run)")
    args = parser.parse_args()
    seconds, rounds = (4, 1) if args.quick else (10, args.rounds)

    database_url = fresh_database("so_bench_observability")
    settings = Settings(database_url=database_url, redis_namespace=NAMESPACE)
    token = user_with_token(settings)
    base_env = server_env(database_url)
    headers = {"Authorization": f"Bearer {token}"}

    # Other work on the machine moves every figure; the load average shows how much.
    load_before = os.getloadavg()
    samples: dict[str, dict[str, list[dict[str, float]]]] = {
        endpoint: {name: [] for name in VARIANTS} for endpoint in ENDPOINTS
    }
    with ExitStack() as stack:
        urls: dict[str, str] = {}
        for name, variant_env in VARIANTS.items():
            env = {**base_env, **variant_env}
            if variant_env["SO_METRICS_ENABLED"] == "true":
                # The api runs in multiprocess mode in production: measure that.
                env["PROMETHEUS_MULTIPROC_DIR"] = stack.enter_context(
                    tempfile.TemporaryDirectory(prefix=f"so-metrics-{name}-")
                )
            urls[name] = stack.enter_context(server("bench.auth_apps:create_cached_app", env))
        for url in urls.values():
            for endpoint in ENDPOINTS:
                run_wrk(url + endpoint, seconds=2, connections=args.connections, headers=headers)

        for round_number in range(rounds):
            # Alternate the order so no variant always runs first after a pause.
            order = list(VARIANTS) if round_number % 2 == 0 else list(reversed(VARIANTS))
            for endpoint in ENDPOINTS:
                for name in order:
                    samples[endpoint][name].append(
                        run_wrk(
                            urls[name] + endpoint,
                            seconds=seconds,
                            connections=args.connections,
                            headers=headers,
                        )
                    )

    figures: dict[str, Any] = {}
    for endpoint in ENDPOINTS:
        rps = {
            name: statistics.median(s["rps"] for s in runs)
            for name, runs in samples[endpoint].items()
        }
        figures[endpoint] = {
            name: {
                "rps_median": round(rps[name], 1),
                "rps_runs": [round(s["rps"], 1) for s in runs],
                "p99_ms_median": statistics.median(s["p99_ms"] for s in runs),
                "errors": sum(s["errors"] for s in runs),
                "overhead_vs_off_pct": round((1 - rps[name] / rps["off"]) * 100, 1),
            }
            for name, runs in samples[endpoint].items()
        }

    result = {
        "date": now_iso(),
        "machine": machine_description(),
        "command": "python -m bench.observability_overhead" + (" --quick" if args.quick else ""),
        "server": "granian, 1 worker",
        "load": (
            f"wrk, 1 thread, {args.connections} connections, {seconds} s per run, "
            f"{rounds} interleaved round(s)"
        ),
        "load_average_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "variants": {name: env for name, env in VARIANTS.items()},
        "endpoints": figures,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "observability_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

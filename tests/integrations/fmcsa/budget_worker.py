"""One OS process of the shared-budget test: makes N carrier lookups and prints
how they ended as JSON. Run by test_fmcsa_resilience, not collected by pytest."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

import httpx
from pydantic import SecretStr

from superior_one.config import Settings
from superior_one.integrations.fmcsa import FmcsaClient, FmcsaOverBudgetError
from superior_one.observability.logging import configure_logging
from superior_one.redis import create_redis


async def run(args: argparse.Namespace) -> Counter[str]:
    settings = Settings(
        redis_url=args.redis_url,
        redis_namespace=args.namespace,
        fmcsa_base_url=args.base_url,
        fmcsa_web_key=SecretStr(args.web_key),
        fmcsa_call_budget=args.budget,
        fmcsa_budget_max_wait_s=args.max_wait,
        fmcsa_retry_attempts=1,
        fmcsa_breaker_threshold=1000,
    )
    redis = create_redis(settings)
    outcomes: Counter[str] = Counter()
    async with httpx.AsyncClient() as http:
        client = FmcsaClient.create(settings, http=http, redis=redis)

        async def lookup(dot: int) -> None:
            try:
                await client.carrier(dot, max_age_s=0)
                outcomes["ok"] += 1
            except FmcsaOverBudgetError:
                outcomes["over_budget"] += 1
            except Exception as exc:  # reported to the test, which fails on it
                outcomes[type(exc).__name__] += 1

        # Both processes start their calls at the same wall-clock instant.
        await asyncio.sleep(max(0.0, args.start_at - time.time()))
        await asyncio.gather(*(lookup(args.first_dot + i) for i in range(args.count)))
    await redis.aclose()
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--redis-url", "--namespace", "--base-url", "--web-key", "--budget"):
        parser.add_argument(name, required=True)
    parser.add_argument("--max-wait", type=float, required=True)
    parser.add_argument("--first-dot", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--start-at", type=float, required=True)
    # Log lines go to stderr, so stdout carries only the JSON result.
    configure_logging(level="WARNING")
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()

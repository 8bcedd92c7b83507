"""Payments tests run against the local payment provider simulator, chosen by settings.

``settings`` is overridden here: the app, resources and worker of these tests
talk to a fresh simulator per test (its base URL, key and webhook secret).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from superior_one.config import Settings
from superior_one.simulators.payment_provider import (
    DEFAULT_API_KEY,
    DEFAULT_WEBHOOK_SECRET,
    PaymentProviderSimulator,
    SimulatorConfig,
    run_payment_provider,
)
from superior_one.simulators.server import ServerThread

# Shorter than the simulator's lost-response delay in the timeout tests.
STRIPE_TIMEOUT_S = 2.0


@pytest.fixture
def payment_simulator() -> Iterator[tuple[PaymentProviderSimulator, ServerThread]]:
    config = SimulatorConfig(webhook_url=None, webhook_retry_delay_s=0.05)
    with run_payment_provider(config) as pair:
        yield pair


@pytest.fixture
def simulator(
    payment_simulator: tuple[PaymentProviderSimulator, ServerThread],
) -> PaymentProviderSimulator:
    return payment_simulator[0]


@pytest.fixture
def settings(
    settings: Settings, payment_simulator: tuple[PaymentProviderSimulator, ServerThread]
) -> Settings:
    return settings.model_copy(
        update={
            "stripe_secret_key": SecretStr(DEFAULT_API_KEY),
            "stripe_api_base": payment_simulator[1].base_url,
            "stripe_timeout_s": STRIPE_TIMEOUT_S,
            "stripe_webhook_secret": SecretStr(DEFAULT_WEBHOOK_SECRET),
            "payments_reconcile_after_s": 0.3,
            # 50 concurrent charges share the test pool: wait for a connection
            # rather than fail on a busy machine.
            "db_pool_timeout_s": 30.0,
            # A worker run in the test process: quick retries, no metrics port,
            # no catch-up of periodic ticks.
            "jobs_heartbeat_s": 0.5,
            "jobs_stalled_after_s": 5.0,
            "jobs_periodic_max_delay_s": 0.0,
            "jobs_retry_base_s": 0.05,
            "jobs_retry_cap_s": 0.2,
            "metrics_port_worker": 0,
        }
    )

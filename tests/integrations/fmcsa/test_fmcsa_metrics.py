"""Prometheus metrics of the FMCSA integration, read from the process registry."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from superior_one.integrations.fmcsa import FmcsaCircuitOpenError, FmcsaClient, FmcsaError
from superior_one.simulators.fmcsa import Fault, SimulatorServer


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _errors(kind: str, operation: str = "carrier") -> float:
    return _sample(
        "so_external_call_errors_total", dependency="fmcsa", operation=operation, kind=kind
    )


async def test_metrics_count_calls_by_outcome(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    ok_before = _sample(
        "so_external_call_duration_seconds_count",
        dependency="fmcsa", operation="basics", outcome="ok",
    )  # fmt: skip
    await fmcsa.basics(44110)
    ok_after = _sample(
        "so_external_call_duration_seconds_count",
        dependency="fmcsa", operation="basics", outcome="ok",
    )  # fmt: skip
    assert ok_after - ok_before == 1


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault(kind="status", status=502, count=1), "http_5xx"),
        (Fault(kind="rate_limit", retry_after_seconds=0, count=1), "rate_limited"),
        (Fault(kind="maintenance", count=1), "http_5xx"),
    ],
    ids=["5xx", "429", "maintenance"],
)
async def test_metrics_count_failed_attempts_by_kind(
    make_client: Callable[..., FmcsaClient],
    simulator: SimulatorServer,
    fault: Fault,
    kind: str,
) -> None:
    before = _errors(kind)
    simulator.state.add_fault(fault)
    # The maintenance page is not retried, so that lookup raises.
    with contextlib.suppress(FmcsaError):
        await make_client().carrier(158121)
    assert _errors(kind) - before == 1


async def test_metrics_count_timeouts(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    before = _errors("timeout")
    simulator.state.add_fault(Fault(kind="timeout", delay_seconds=1.0, count=1))
    await make_client(fmcsa_read_timeout_s=0.2).carrier(158121)
    assert _errors("timeout") - before == 1


async def test_metrics_record_open_circuit(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    client = make_client(fmcsa_breaker_threshold=1, fmcsa_retry_attempts=1)
    opened_before = _sample(
        "so_circuit_breaker_transitions_total", dependency="fmcsa", state="open"
    )
    rejected_before = _errors("circuit_open")
    simulator.state.add_fault(Fault(kind="status", count=None))
    with pytest.raises(FmcsaError):
        await client.carrier(158121)
    with pytest.raises(FmcsaCircuitOpenError):
        await client.carrier(158121, max_age_s=0)

    assert _sample("so_circuit_breaker_state", dependency="fmcsa") == 2.0
    assert (
        _sample("so_circuit_breaker_transitions_total", dependency="fmcsa", state="open")
        - opened_before
        == 1
    )
    assert _errors("circuit_open") - rejected_before == 1


async def test_metrics_observe_budget_waits(fmcsa: FmcsaClient, simulator: SimulatorServer) -> None:
    before = _sample("so_external_budget_wait_seconds_count", dependency="fmcsa")
    await fmcsa.carrier(3000004)
    await fmcsa.carrier(3000005)
    assert _sample("so_external_budget_wait_seconds_count", dependency="fmcsa") - before == 2

"""The QCMobile client against the local simulator on 127.0.0.1: wire paths,
typed errors, which failures are retried, and the reply cache."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from superior_one.config import Settings
from superior_one.integrations.fmcsa import (
    FmcsaClient,
    FmcsaConfigurationError,
    FmcsaMaintenanceError,
    FmcsaResponseError,
    FmcsaTransientError,
)
from superior_one.simulators.fmcsa import Fault, PinnedResponse, SimulatorServer
from tests.integrations.fmcsa.conftest import WEB_KEY


def _paths(simulator: SimulatorServer) -> list[str]:
    return [request.path for request in simulator.state.requests()]


async def test_carrier_reads_sample_over_http(
    fmcsa: FmcsaClient, simulator: SimulatorServer, qcmobile_dir: Path
) -> None:
    fetched = await fmcsa.carrier(158121)
    assert fetched.value is not None
    assert fetched.value.legal_name == "NORTHWOODS TRUCKING INC"
    assert fetched.from_cache is False


async def test_carrier_sends_web_key_as_query_parameter(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    # The simulator returns 404 "Webkey not found" unless webKey matches.
    fetched = await fmcsa.carrier(3000004)
    assert fetched.value is not None


async def test_carriers_by_docket_returns_list(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    fetched = await fmcsa.carriers_by_docket(123456)
    assert [record.dot_number for record in fetched.value] == [2_123_456]
    assert _paths(simulator) == ["carriers/docket-number/123456"]


async def test_sub_resources_read_samples(
    fmcsa: FmcsaClient, simulator: SimulatorServer, qcmobile_dir: Path
) -> None:
    authority = (await fmcsa.authority(53467)).value
    oos = (await fmcsa.out_of_service(885213)).value
    basics = (await fmcsa.basics(44110)).value
    dockets = (await fmcsa.docket_numbers(44110)).value
    cargo = (await fmcsa.cargo_carried(53467)).value
    classes = (await fmcsa.operation_classification(53467)).value
    assert [len(authority), len(oos), len(basics), len(dockets), len(cargo), len(classes)] == [
        1, 2, 5, 1, 17, 3,
    ]  # fmt: skip
    assert _paths(simulator) == [
        "carriers/53467/authority",
        "carriers/885213/oos",
        "carriers/44110/basics",
        "carriers/44110/docket-numbers",
        "carriers/53467/cargo-carried",
        "carriers/53467/operation-classification",
    ]


async def test_carrier_reads_null_content_as_not_found(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    fetched = await fmcsa.carrier(3000100)  # the simulator's "unknown" profile
    assert fetched.value is None


async def test_carrier_rejects_non_positive_number(fmcsa: FmcsaClient) -> None:
    with pytest.raises(ValueError, match="DOT number"):
        await fmcsa.carrier(0)


async def test_carrier_raises_configuration_error_on_webkey_not_found(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    client = make_client(fmcsa_web_key=SecretStr("wrong-key"))
    with pytest.raises(FmcsaConfigurationError) as caught:
        await client.carrier(158121)
    assert caught.value.reason == "web_key_rejected"
    assert len(_paths(simulator)) == 1  # never retried


async def test_carrier_raises_configuration_error_without_web_key(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    client = make_client(fmcsa_web_key=SecretStr(""))
    with pytest.raises(FmcsaConfigurationError):
        await client.carrier(158121)
    assert _paths(simulator) == []


async def test_carrier_raises_configuration_error_on_wrong_base_url(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    client = make_client(fmcsa_base_url=simulator.base_url.replace("/qc/services", "/nowhere"))
    with pytest.raises(FmcsaConfigurationError) as caught:
        await client.carrier(158121)
    assert caught.value.reason == "wrong_base_url"


async def test_carrier_maintenance_page_not_retried(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    simulator.state.add_fault(Fault(kind="maintenance", count=None))
    with pytest.raises(FmcsaMaintenanceError):
        await fmcsa.carrier(158121)
    assert len(_paths(simulator)) == 1


async def test_carrier_maintenance_page_with_503(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    simulator.state.add_fault(Fault(kind="maintenance", status=503, count=None))
    with pytest.raises(FmcsaMaintenanceError) as caught:
        await make_client().carrier(158121)
    assert caught.value.status_code == 503


async def test_carrier_retries_server_errors_then_succeeds(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    simulator.state.add_fault(Fault(kind="status", status=502, count=2))
    fetched = await fmcsa.carrier(158121)
    assert fetched.value is not None
    assert [r.status for r in simulator.state.requests()] == [502, 502, 200]


async def test_carrier_retries_rate_limit_then_succeeds(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    simulator.state.add_fault(Fault(kind="rate_limit", retry_after_seconds=0.01, count=1))
    fetched = await fmcsa.carrier(158121)
    assert fetched.value is not None
    assert [r.status for r in simulator.state.requests()] == [429, 200]


async def test_carrier_retries_timeout_then_succeeds(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    client = make_client(fmcsa_read_timeout_s=0.2)
    simulator.state.add_fault(Fault(kind="timeout", delay_seconds=1.0, count=1))
    fetched = await client.carrier(158121)
    assert fetched.value is not None
    assert len(_paths(simulator)) == 2


async def test_carrier_gives_up_after_configured_attempts(
    make_client: Callable[..., FmcsaClient], simulator: SimulatorServer
) -> None:
    simulator.state.add_fault(Fault(kind="status", status=503, count=None))
    with pytest.raises(FmcsaTransientError) as caught:
        await make_client(fmcsa_retry_attempts=4).carrier(158121)
    assert caught.value.status_code == 503
    assert len(_paths(simulator)) == 4


async def test_carrier_does_not_retry_client_error(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    simulator.state.pin(PinnedResponse(path="carriers/158121", status=400, body={"content": "x"}))
    with pytest.raises(FmcsaResponseError):
        await fmcsa.carrier(158121)
    assert len(_paths(simulator)) == 1


async def test_carrier_does_not_retry_unreadable_body(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    body = {"content": {"carrier": {"dotNumber": "not-a-number", "legalName": "X"}}}
    simulator.state.pin(PinnedResponse(path="carriers/158121", body=body))
    with pytest.raises(FmcsaResponseError):
        await fmcsa.carrier(158121)
    assert len(_paths(simulator)) == 1


async def test_carrier_serves_fresh_cache_without_calling(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    first = await fmcsa.carrier(158121)
    second = await fmcsa.carrier(158121)
    assert second.from_cache is True
    assert second.fetched_at == first.fetched_at
    assert len(_paths(simulator)) == 1


async def test_carrier_calls_again_when_max_age_is_zero(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    await fmcsa.carrier(158121)
    again = await fmcsa.carrier(158121, max_age_s=0)
    assert again.from_cache is False
    assert len(_paths(simulator)) == 2


async def test_carrier_attaches_last_known_answer_to_unavailability(
    fmcsa: FmcsaClient, simulator: SimulatorServer
) -> None:
    first = await fmcsa.carrier(158121)
    simulator.state.add_fault(Fault(kind="status", count=None))
    with pytest.raises(FmcsaTransientError) as caught:
        await fmcsa.carrier(158121, max_age_s=0)
    assert caught.value.last_known is not None
    assert caught.value.last_known.fetched_at == first.fetched_at


async def test_carrier_without_guard_makes_one_attempt(
    fmcsa_settings: Settings, http: httpx.AsyncClient, simulator: SimulatorServer
) -> None:
    plain = FmcsaClient(http, fmcsa_settings)
    simulator.state.add_fault(Fault(kind="status", count=None))
    with pytest.raises(FmcsaTransientError):
        await plain.carrier(158121)
    assert len(_paths(simulator)) == 1


async def test_carrier_keeps_web_key_out_of_httpx_logs(
    fmcsa: FmcsaClient, simulator: SimulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="httpx"):
        await fmcsa.carrier(158121)
    messages = [record.getMessage() for record in caplog.records if record.name == "httpx"]
    assert messages  # httpx did log the request...
    assert not any(WEB_KEY in message for message in messages)  # ...without the key

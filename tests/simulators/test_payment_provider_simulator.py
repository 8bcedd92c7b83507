"""The payment provider simulator on the wire: Stripe's form encoding, idempotency, webhooks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from superior_one.payments.webhooks import SIGNATURE_HEADER, verify_signature
from superior_one.simulators.payment_provider import (
    DEFAULT_API_KEY,
    DEFAULT_WEBHOOK_SECRET,
    PaymentProviderSimulator,
    SimulatorConfig,
    StripeApiError,
    decode_form,
    run_payment_provider,
)
from superior_one.simulators.server import ServerThread

AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
CHARGE_FORM = {
    "amount": "123456",
    "currency": "usd",
    "customer": "cus_test_A",
    "payment_method": "pm_card_visa",
    "confirm": "true",
    "off_session": "true",
    "automatic_payment_methods[enabled]": "true",
    "automatic_payment_methods[allow_redirects]": "never",
    "metadata[invoice_id]": "INV-1001",
}
WAIT_LIMIT_S = 10.0


@dataclass
class WebhookReceiver:
    """A stand-in platform endpoint that records every webhook request."""

    # Status codes to return, in order, then 200 once the list is empty.
    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        status = self.statuses.pop(0) if self.statuses else 200
        return Response(status_code=status)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def receiver() -> Iterator[tuple[WebhookReceiver, ServerThread]]:
    recorder = WebhookReceiver()
    app = Starlette(routes=[Route("/webhooks/stripe", recorder.handle, methods=["POST"])])
    with ServerThread(app) as server:
        yield recorder, server


@pytest.fixture
def config(receiver: tuple[WebhookReceiver, ServerThread]) -> SimulatorConfig:
    return SimulatorConfig(
        webhook_url=f"{receiver[1].base_url}/webhooks/stripe", webhook_retry_delay_s=0.05
    )


@pytest.fixture
def running(config: SimulatorConfig) -> Iterator[tuple[PaymentProviderSimulator, ServerThread]]:
    with run_payment_provider(config) as pair:
        yield pair


@pytest.fixture
def simulator(running: tuple[PaymentProviderSimulator, ServerThread]) -> PaymentProviderSimulator:
    return running[0]


@pytest.fixture
async def api(
    running: tuple[PaymentProviderSimulator, ServerThread],
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=running[1].base_url, headers=AUTH) as client:
        yield client


async def _wait_until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` until true; fail after WAIT_LIMIT_S."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_LIMIT_S
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {WAIT_LIMIT_S} s")
        await asyncio.sleep(0.02)


async def _post(
    api: httpx.AsyncClient, path: str, form: dict[str, str], key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await api.post(path, data=form, headers=headers)


async def _set_faults(api: httpx.AsyncClient, plan: dict[str, Any]) -> None:
    response = await api.post("/__sim/faults", json=plan)
    assert response.status_code == 200


async def _stats(api: httpx.AsyncClient) -> dict[str, int]:
    response = await api.get("/__sim/stats")
    stats: dict[str, int] = response.json()
    return stats


# --- Form decoding ---------------------------------------------------------------


def test_decode_form_nested_keys() -> None:
    decoded = decode_form(
        [("metadata[invoice_id]", "INV-1001"), ("capabilities[transfers][requested]", "true")]
    )

    assert decoded == {
        "metadata": {"invoice_id": "INV-1001"},
        "capabilities": {"transfers": {"requested": "true"}},
    }


def test_decode_form_indexed_keys_become_list() -> None:
    decoded = decode_form([("expand[1]", "b"), ("expand[0]", "a")])

    assert decoded == {"expand": ["a", "b"]}


@pytest.mark.parametrize("key", ["[x]", "a[b", "a]"])
def test_decode_form_invalid_key(key: str) -> None:
    with pytest.raises(StripeApiError):
        decode_form([(key, "1")])


def test_decode_form_scalar_then_nested_conflict() -> None:
    with pytest.raises(StripeApiError):
        decode_form([("metadata", "x"), ("metadata[a]", "1")])


# --- Requests and errors -------------------------------------------------------------


async def test_create_payment_intent_form_encoded(api: httpx.AsyncClient) -> None:
    response = await _post(api, "/v1/payment_intents", CHARGE_FORM, "k1")
    body = response.json()

    assert response.status_code == 200
    assert body["object"] == "payment_intent"
    assert body["status"] == "succeeded"
    assert body["amount"] == 123456
    assert body["metadata"] == {"invoice_id": "INV-1001"}
    assert body["latest_charge"].startswith("ch_")
    assert response.headers["request-id"].startswith("req_")
    assert response.headers["idempotency-key"] == "k1"


async def test_request_without_secret_key_rejected(
    running: tuple[PaymentProviderSimulator, ServerThread],
) -> None:
    async with httpx.AsyncClient(base_url=running[1].base_url) as anonymous:
        response = await anonymous.get("/v1/payment_intents/pi_x")

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_basic_auth_with_secret_key_accepted(
    running: tuple[PaymentProviderSimulator, ServerThread],
) -> None:
    async with httpx.AsyncClient(
        base_url=running[1].base_url, auth=(DEFAULT_API_KEY, "")
    ) as client:
        response = await _post(client, "/v1/accounts", {"type": "express"})

    assert response.status_code == 200


async def test_basic_auth_with_wrong_key_rejected(
    running: tuple[PaymentProviderSimulator, ServerThread],
) -> None:
    async with httpx.AsyncClient(base_url=running[1].base_url, auth=("sk_wrong", "")) as client:
        response = await _post(client, "/v1/accounts", {"type": "express"})

    assert response.status_code == 401


async def test_unknown_route_not_found(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/customers", data={"email": "a@b.example"})

    assert response.status_code == 404
    assert "Unrecognized request URL" in response.json()["error"]["message"]


async def test_unknown_parameter_rejected(api: httpx.AsyncClient) -> None:
    response = await _post(api, "/v1/payment_intents", {**CHARGE_FORM, "colour": "red"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parameter_unknown"
    assert response.json()["error"]["param"] == "colour"


async def test_server_confirmation_needs_redirects_off(api: httpx.AsyncClient) -> None:
    form = {k: v for k, v in CHARGE_FORM.items() if "automatic_payment_methods" not in k}

    response = await _post(api, "/v1/payment_intents", form)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "return_url"


# --- Idempotency ---------------------------------------------------------------------


async def test_idempotent_replay_same_body(
    api: httpx.AsyncClient, simulator: PaymentProviderSimulator
) -> None:
    first = await _post(api, "/v1/payment_intents", CHARGE_FORM, "k1")
    second = await _post(api, "/v1/payment_intents", CHARGE_FORM, "k1")

    assert second.status_code == 200
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["original-request"] == first.headers["request-id"]
    assert "idempotent-replayed" not in first.headers
    assert simulator.stats["payment_intents_created"] == 1


async def test_idempotent_replay_ignores_parameter_order(api: httpx.AsyncClient) -> None:
    first = await _post(api, "/v1/payment_intents", CHARGE_FORM, "k1")
    reordered = dict(reversed(list(CHARGE_FORM.items())))

    second = await _post(api, "/v1/payment_intents", reordered, "k1")

    assert second.json()["id"] == first.json()["id"]


async def test_idempotency_key_with_other_params(api: httpx.AsyncClient) -> None:
    await _post(api, "/v1/payment_intents", CHARGE_FORM, "k1")

    response = await _post(api, "/v1/payment_intents", {**CHARGE_FORM, "amount": "123457"}, "k1")

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "idempotency_error"
    assert "'k1'" in response.json()["error"]["message"]
    assert (await _stats(api))["payment_intents_created"] == 1


async def test_idempotency_key_on_other_endpoint(api: httpx.AsyncClient) -> None:
    await _post(api, "/v1/payment_intents", CHARGE_FORM, "k1")

    response = await _post(api, "/v1/accounts", {"type": "express"}, "k1")

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "idempotency_error"


async def test_idempotency_key_in_use_conflict(api: httpx.AsyncClient) -> None:
    await _set_faults(api, {"api": [{"kind": "latency", "delay_s": 0.5}]})

    first, second = await asyncio.gather(
        _post(api, "/v1/payment_intents", CHARGE_FORM, "k1"),
        _post(api, "/v1/payment_intents", CHARGE_FORM, "k1"),
    )

    statuses = sorted([first.status_code, second.status_code])
    conflict = first if first.status_code == 409 else second
    assert statuses == [200, 409]
    assert conflict.json()["error"]["code"] == "idempotency_key_in_use"
    assert (await _stats(api))["idempotency_conflicts"] == 1


async def test_validation_error_not_stored(api: httpx.AsyncClient) -> None:
    invalid = await _post(api, "/v1/payment_intents", {**CHARGE_FORM, "amount": "12.5"}, "k1")

    valid = await _post(api, "/v1/payment_intents", CHARGE_FORM, "k1")

    assert invalid.status_code == 400
    assert invalid.json()["error"]["code"] == "parameter_invalid_integer"
    assert valid.status_code == 200


async def test_server_error_fault_not_stored(api: httpx.AsyncClient) -> None:
    await _set_faults(api, {"api": [{"kind": "server_error", "status": 502}]})

    failed = await _post(api, "/v1/payment_intents", CHARGE_FORM, "k1")
    retried = await _post(api, "/v1/payment_intents", CHARGE_FORM, "k1")
    stats = await _stats(api)

    assert failed.status_code == 502
    assert failed.json()["error"]["type"] == "api_error"
    assert retried.status_code == 200
    assert "idempotent-replayed" not in retried.headers
    assert stats["payment_intents_created"] == 1
    assert stats["faults_server_error"] == 1


async def test_fault_times_counts_down(api: httpx.AsyncClient) -> None:
    await _set_faults(api, {"api": [{"kind": "server_error", "times": 2}]})

    statuses = [
        (await _post(api, "/v1/payment_intents", CHARGE_FORM)).status_code for _ in range(3)
    ]
    remaining = (await api.get("/__sim/faults")).json()

    assert statuses == [500, 500, 200]
    assert remaining["api"] == []


async def test_fault_plan_rejects_unknown_kind(api: httpx.AsyncClient) -> None:
    response = await api.post("/__sim/faults", json={"api": [{"kind": "meteor"}]})

    assert response.status_code == 422


async def test_fault_plan_cleared(api: httpx.AsyncClient) -> None:
    await _set_faults(api, {"api": [{"kind": "server_error", "times": None}]})

    await api.delete("/__sim/faults")
    response = await _post(api, "/v1/payment_intents", CHARGE_FORM)

    assert response.status_code == 200


async def test_decline_fault_wire_format(api: httpx.AsyncClient) -> None:
    await _set_faults(
        api,
        {
            "api": [
                {"kind": "decline", "decline_code": "lost_card", "advice_code": "do_not_try_again"}
            ]
        },
    )

    response = await _post(api, "/v1/payment_intents", CHARGE_FORM, "k1")
    error = response.json()["error"]

    assert response.status_code == 402
    assert error["type"] == "card_error"
    assert error["code"] == "card_declined"
    assert error["decline_code"] == "lost_card"
    assert error["advice_code"] == "do_not_try_again"
    assert error["payment_intent"]["status"] == "requires_payment_method"
    assert error["charge"].startswith("ch_")


async def test_reset_forgets_everything(
    api: httpx.AsyncClient, simulator: PaymentProviderSimulator
) -> None:
    first = await _post(api, "/v1/payment_intents", CHARGE_FORM, "k1")

    await api.post("/__sim/reset")
    second = await _post(api, "/v1/payment_intents", CHARGE_FORM, "k1")

    assert second.json()["id"] != first.json()["id"]
    assert simulator.stats["payment_intents_created"] == 1


# --- Webhooks --------------------------------------------------------------------------


async def test_webhooks_signed_and_delivered(
    api: httpx.AsyncClient, receiver: tuple[WebhookReceiver, ServerThread]
) -> None:
    recorder = receiver[0]
    created = (await _post(api, "/v1/payment_intents", CHARGE_FORM, "k1")).json()

    await _wait_until(lambda: len(recorder.received) == 3)
    types = [event["type"] for event in recorder.events()]

    assert types == ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded"]
    for headers, body in recorder.received:
        signature = headers[SIGNATURE_HEADER.lower()]
        assert verify_signature(body, signature, [DEFAULT_WEBHOOK_SECRET]) > 0
        assert headers["content-type"].startswith("application/json")
    succeeded = recorder.events()[2]
    assert succeeded["object"] == "event"
    assert succeeded["id"].startswith("evt_")
    assert succeeded["data"]["object"]["id"] == created["id"]
    assert succeeded["data"]["object"]["metadata"] == {"invoice_id": "INV-1001"}


async def test_webhooks_payment_failed_event(
    api: httpx.AsyncClient, receiver: tuple[WebhookReceiver, ServerThread]
) -> None:
    recorder = receiver[0]
    await _set_faults(api, {"api": [{"kind": "decline"}]})

    await _post(api, "/v1/payment_intents", CHARGE_FORM)

    await _wait_until(lambda: len(recorder.received) == 3)
    failed = recorder.events()[-1]
    assert failed["type"] == "payment_intent.payment_failed"
    assert failed["data"]["object"]["last_payment_error"]["decline_code"] == "generic_decline"


async def test_webhooks_duplicated(
    api: httpx.AsyncClient, receiver: tuple[WebhookReceiver, ServerThread]
) -> None:
    recorder = receiver[0]
    await _set_faults(api, {"webhooks": {"duplicates": 1}})

    await _post(api, "/v1/payment_intents", CHARGE_FORM)

    await _wait_until(lambda: len(recorder.received) == 6)
    ids = [event["id"] for event in recorder.events()]
    assert len(set(ids)) == 3
    assert ids[0] == ids[1]


async def test_webhooks_reordered(
    api: httpx.AsyncClient, receiver: tuple[WebhookReceiver, ServerThread]
) -> None:
    recorder = receiver[0]
    await _set_faults(api, {"webhooks": {"reorder_window": 3}})

    await _post(api, "/v1/payment_intents", CHARGE_FORM)

    await _wait_until(lambda: len(recorder.received) == 3)
    types = [event["type"] for event in recorder.events()]
    assert types == ["payment_intent.succeeded", "charge.succeeded", "payment_intent.created"]


async def test_webhooks_reorder_partial_batch_flushed(
    api: httpx.AsyncClient, receiver: tuple[WebhookReceiver, ServerThread]
) -> None:
    recorder = receiver[0]
    await _set_faults(api, {"webhooks": {"reorder_window": 10}})
    await _post(api, "/v1/payment_intents", CHARGE_FORM)
    waiting = (await _stats(api))["webhooks_pending"]

    flushed = await api.post("/__sim/webhooks/flush")

    await _wait_until(lambda: len(recorder.received) == 3)
    assert waiting == 3
    assert flushed.json() == {"released": 3}
    assert recorder.events()[0]["type"] == "payment_intent.succeeded"


async def test_webhooks_delayed(
    api: httpx.AsyncClient, receiver: tuple[WebhookReceiver, ServerThread]
) -> None:
    recorder = receiver[0]
    # Long enough that nothing can arrive while the test looks.
    await _set_faults(api, {"webhooks": {"delay_s": 30}})

    await _post(api, "/v1/payment_intents", CHARGE_FORM)
    stats = await _stats(api)

    assert recorder.received == []
    assert stats["events_created"] == 3
    assert stats.get("webhooks_delivered", 0) == 0


async def test_webhooks_retried_after_platform_error(
    api: httpx.AsyncClient,
    receiver: tuple[WebhookReceiver, ServerThread],
    simulator: PaymentProviderSimulator,
) -> None:
    recorder = receiver[0]
    recorder.statuses = [500, 503]

    await _post(api, "/v1/payment_intents", {**CHARGE_FORM, "confirm": "false"})

    await _wait_until(lambda: len(recorder.received) == 3)
    # The simulator counts a delivery once the receiver's response reaches it.
    await _wait_until(lambda: simulator.stats["webhooks_delivered"] == 1)
    stats = await _stats(api)
    ids = [event["id"] for event in recorder.events()]
    assert len(set(ids)) == 1
    assert stats["webhooks_delivered"] == 1
    assert stats["webhook_attempts"] == 3


async def test_webhooks_signed_with_every_secret(
    receiver: tuple[WebhookReceiver, ServerThread],
) -> None:
    recorder, server = receiver
    config = SimulatorConfig(
        webhook_url=f"{server.base_url}/webhooks/stripe",
        webhook_secrets=("whsec_old", "whsec_new"),
    )
    with run_payment_provider(config) as (_, sim_server):
        async with httpx.AsyncClient(base_url=sim_server.base_url, headers=AUTH) as client:
            await _post(client, "/v1/accounts", {"type": "express"})
            account = (await _post(client, "/v1/accounts", {"type": "express"})).json()
            await client.post(f"/__sim/accounts/{account['id']}/activate")
            await _wait_until(lambda: len(recorder.received) == 1)

    headers, body = recorder.received[0]
    signature = headers[SIGNATURE_HEADER.lower()]
    assert signature.count("v1=") == 2
    assert verify_signature(body, signature, ["whsec_old"]) > 0
    assert verify_signature(body, signature, ["whsec_new"]) > 0
    assert json.loads(body)["type"] == "account.updated"
    assert json.loads(body)["account"] == account["id"]


async def test_events_listed_by_type(api: httpx.AsyncClient) -> None:
    await _post(api, "/v1/payment_intents", CHARGE_FORM)

    response = await api.get("/__sim/events", params={"type": "payment_intent.succeeded"})

    assert [event["type"] for event in response.json()["data"]] == ["payment_intent.succeeded"]


# --- Connect ---------------------------------------------------------------------------


async def test_transfer_links_charge_and_group(
    api: httpx.AsyncClient, receiver: tuple[WebhookReceiver, ServerThread]
) -> None:
    recorder = receiver[0]
    charge = (await _post(api, "/v1/payment_intents", CHARGE_FORM)).json()["latest_charge"]
    account = (
        await _post(
            api, "/v1/accounts", {"type": "express", "capabilities[transfers][requested]": "true"}
        )
    ).json()
    await api.post(f"/__sim/accounts/{account['id']}/activate")

    response = await _post(
        api,
        "/v1/transfers",
        {
            "amount": "119752",
            "currency": "usd",
            "destination": account["id"],
            "transfer_group": "load_42",
            "source_transaction": charge,
        },
        "payout:1:transfer",
    )

    await _wait_until(lambda: any(e["type"] == "transfer.created" for e in recorder.events()))
    assert response.status_code == 200
    assert response.json()["source_transaction"] == charge
    assert response.json()["transfer_group"] == "load_42"
    assert response.json()["destination_payment"].startswith("py_")


async def test_transfer_unknown_destination(api: httpx.AsyncClient) -> None:
    response = await _post(
        api, "/v1/transfers", {"amount": "100", "currency": "usd", "destination": "acct_missing"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "resource_missing"


async def test_accounts_active_on_create_config(
    receiver: tuple[WebhookReceiver, ServerThread],
) -> None:
    config = SimulatorConfig(accounts_active_on_create=True)
    with run_payment_provider(config) as (_, server):
        async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH) as client:
            account = (await _post(client, "/v1/accounts", {"type": "express"})).json()

    assert account["payouts_enabled"] is True
    assert account["capabilities"] == {"transfers": "active"}

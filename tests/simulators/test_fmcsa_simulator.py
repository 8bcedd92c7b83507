"""The FMCSA simulator over HTTP: sample replies, generated replies, the webKey
check, the admin endpoints and fault injection."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from superior_one.integrations.fmcsa import schemas
from superior_one.simulators.fmcsa import (
    SAMPLE_FILES,
    Fault,
    SimulatorServer,
    _parse_fault,
    generated_reply,
)

WEB_KEY = "sim-test-key"
REPO = Path(__file__).resolve().parents[2]
QCMOBILE_DIR = (REPO / "../shared/data/fmcsa/qcmobile").resolve()


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    data_dir = QCMOBILE_DIR if QCMOBILE_DIR.is_dir() else None
    with SimulatorServer(web_key=WEB_KEY, data_dir=data_dir) as server:
        yield server


@pytest.fixture
def http(simulator: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{simulator.port}", timeout=5) as client:
        yield client


def _get(http: httpx.Client, path: str, web_key: str = WEB_KEY) -> httpx.Response:
    return http.get(f"/qc/services/{path}", params={"webKey": web_key})


@pytest.mark.parametrize(("path", "name"), sorted(SAMPLE_FILES.items()))
def test_simulator_serves_exact_sample(http: httpx.Client, path: str, name: str) -> None:
    if not QCMOBILE_DIR.is_dir():
        pytest.skip(f"QCMobile sample replies not found at {QCMOBILE_DIR}")
    response = _get(http, path)
    assert response.status_code == 200
    assert response.json() == json.loads((QCMOBILE_DIR / name).read_text(encoding="utf-8"))


def test_simulator_rejects_wrong_web_key(http: httpx.Client) -> None:
    response = _get(http, "carriers/158121", web_key="wrong")
    assert response.status_code == 404
    assert response.json()["content"] == "Webkey not found"


def test_simulator_rejects_missing_web_key(http: httpx.Client) -> None:
    response = http.get("/qc/services/carriers/158121")
    assert response.status_code == 404


def test_simulator_generates_same_reply_for_same_number(http: httpx.Client) -> None:
    first = _get(http, "carriers/3000004").json()
    second = _get(http, "carriers/3000004").json()
    assert first["content"] == second["content"]


def test_simulator_generates_different_carriers_for_different_numbers(
    http: httpx.Client,
) -> None:
    first = _get(http, "carriers/3000004").json()["content"]["carrier"]
    second = _get(http, "carriers/3000005").json()["content"]["carrier"]
    assert first["dotNumber"] != second["dotNumber"]


@pytest.mark.parametrize(
    ("dot", "allowed", "oos", "on_file"),
    [(3000001, "N", None, None), (3000002, "N", "2024-05-14", None), (3000003, "Y", None, "0")],
)
def test_simulator_generates_documented_profiles(
    http: httpx.Client, dot: int, allowed: str, oos: str | None, on_file: str | None
) -> None:
    carrier = _get(http, f"carriers/{dot}").json()["content"]["carrier"]
    assert carrier["allowedToOperate"] == allowed
    assert carrier["oosDate"] == oos
    if on_file is not None:
        assert carrier["bipdInsuranceOnFile"] == on_file


def test_simulator_generates_null_content_for_unknown_profile(http: httpx.Client) -> None:
    assert _get(http, "carriers/3000100").json()["content"] is None


@pytest.mark.parametrize(
    ("path", "parse"),
    [
        ("carriers/3000004", schemas.parse_carriers),
        ("carriers/docket-number/123456", schemas.parse_carriers),
        ("carriers/3000004/authority", schemas.parse_authority),
        ("carriers/3000002/oos", schemas.parse_out_of_service),
        ("carriers/3000004/basics", schemas.parse_basics),
        ("carriers/3000004/docket-numbers", schemas.parse_docket_numbers),
        ("carriers/3000004/cargo-carried", schemas.parse_cargo_carried),
        ("carriers/3000004/operation-classification", schemas.parse_operation_classification),
    ],
)
def test_generated_reply_parses_as_qcmobile_shape(path: str, parse: object) -> None:
    body = generated_reply(path)
    assert body is not None
    assert callable(parse)
    assert len(parse(body)) >= 1


def test_simulator_docket_lookup_returns_list(http: httpx.Client) -> None:
    content = _get(http, "carriers/docket-number/123456").json()["content"]
    assert [item["carrier"]["dotNumber"] for item in content] == [2_123_456]


def test_simulator_answers_404_for_unknown_resource(http: httpx.Client) -> None:
    assert _get(http, "carriers/3000004/nothing-here").status_code == 404


def test_simulator_injects_maintenance_page_through_admin(http: httpx.Client) -> None:
    http.post("/__sim/faults", json={"kind": "maintenance", "count": 1}).raise_for_status()
    faulted = _get(http, "carriers/3000004")
    after = _get(http, "carriers/3000004")
    assert faulted.headers["content-type"].startswith("text/html")
    assert faulted.status_code == 200
    assert after.headers["content-type"].startswith("application/json")


def test_simulator_injects_status_for_count_requests(http: httpx.Client) -> None:
    http.post("/__sim/faults", json={"kind": "status", "status": 502, "count": 2})
    statuses = [_get(http, "carriers/3000004").status_code for _ in range(3)]
    assert statuses == [502, 502, 200]


def test_simulator_injects_rate_limit_with_retry_after(http: httpx.Client) -> None:
    http.post("/__sim/faults", json={"kind": "rate_limit", "retryAfterSeconds": 2})
    response = _get(http, "carriers/3000004")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"


def test_simulator_injects_timeout(http: httpx.Client) -> None:
    http.post("/__sim/faults", json={"kind": "timeout", "delaySeconds": 2})
    with pytest.raises(httpx.ReadTimeout):
        http.get(
            "/qc/services/carriers/3000004", params={"webKey": WEB_KEY}, timeout=httpx.Timeout(0.2)
        )


def test_simulator_applies_fault_only_to_path_prefix(http: httpx.Client) -> None:
    http.post("/__sim/faults", json={"kind": "status", "count": None, "pathPrefix": "carriers/1"})
    assert _get(http, "carriers/3000004").status_code == 200
    assert _get(http, "carriers/1000004").status_code == 503


def test_simulator_clears_faults(http: httpx.Client) -> None:
    http.post("/__sim/faults", json={"kind": "status", "count": None})
    http.delete("/__sim/faults")
    assert _get(http, "carriers/3000004").status_code == 200


def test_simulator_serves_pinned_response(http: httpx.Client) -> None:
    pinned = {"path": "carriers/9999999", "status": 200, "body": {"content": None}}
    http.put("/__sim/responses", json=pinned).raise_for_status()
    assert _get(http, "carriers/9999999").json() == {"content": None}


def test_simulator_lists_served_requests(http: httpx.Client) -> None:
    _get(http, "carriers/3000004")
    _get(http, "carriers/3000005", web_key="wrong")
    served = http.get("/__sim/requests").json()["requests"]
    assert [(r["path"], r["status"]) for r in served] == [
        ("carriers/3000004", 200),
        ("carriers/3000005", 404),
    ]


def test_simulator_without_data_dir_generates_sample_numbers() -> None:
    with SimulatorServer(web_key=WEB_KEY, data_dir=None) as server:
        response = httpx.get(
            f"{server.base_url}/carriers/158121", params={"webKey": WEB_KEY}, timeout=5
        )
    carrier = response.json()["content"]["carrier"]
    assert carrier["dotNumber"] == 158121


def test_fault_option_parses_command_line_forms() -> None:
    assert _parse_fault("status=502:3") == Fault(kind="status", status=502, count=3)
    assert _parse_fault("maintenance") == Fault(kind="maintenance", count=None)
    assert _parse_fault("timeout=6:1") == Fault(kind="timeout", delay_seconds=6.0, count=1)
    assert _parse_fault("rate_limit=2") == Fault(
        kind="rate_limit", retry_after_seconds=2.0, count=None
    )


def test_production_code_never_imports_simulators() -> None:
    offenders = []
    package = REPO / "src" / "superior_one"
    for path in package.rglob("*.py"):
        if (package / "simulators") in path.parents:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom)
                else []
            )  # fmt: skip
            if any(name.startswith("superior_one.simulators") for name in names):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []

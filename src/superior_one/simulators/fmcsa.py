"""A local stand-in for FMCSA QCMobile that speaks its wire format.

Serves ``/qc/services/carriers/...`` like ``https://mobile.fmcsa.dot.gov``: the
exact sample replies for the sample DOT numbers when the sample directory is
present, and for any other number a reply of the same shape derived from the
number alone (same number, same reply). The webKey query parameter is checked
and a wrong one gets QCMobile's 404 "Webkey not found".

Generated carriers, by the last two digits of the DOT number:

====  ==========================================================
00    unknown: ``{"content": null}``
01    allowedToOperate "N" (not authorized)
02    out of service (oosDate set, allowedToOperate "N")
03    no liability insurance on file (bipdInsuranceOnFile "0")
else  active common and contract authority, $750k-$5M on file
====  ==========================================================

``/carriers/docket-number/{mc}`` returns the carrier of DOT ``2,000,000 +
mc`` (a list, as QCMobile does); an MC number ending in 00 finds nothing and
one ending in 99 finds two carriers.

Faults are injected through ``POST /__sim/faults`` (or :meth:`SimulatorState.add_fault`
in-process, or ``--fault`` on the command line). Each fault applies to the next
``count`` matching requests (all of them when ``count`` is null):

* ``status``: answer with ``status`` (default 503) and a short JSON body;
* ``rate_limit``: 429 with ``Retry-After: retryAfterSeconds``;
* ``timeout``: hold the request for ``delaySeconds`` (default 30) and then answer;
* ``latency``: wait ``delaySeconds`` and then answer normally;
* ``maintenance``: the HTML maintenance page with ``status`` (default 200).

``PUT /__sim/responses`` pins the reply of one path (e.g. ``{"path":
"carriers/9999999", "status": 200, "body": {"content": null}}``), and
``GET /__sim/requests`` lists the requests served, with their times, so a test
can count calls in any window. Admin paths need no webKey.

Run it with ``python -m superior_one.simulators.fmcsa --port 8081 --web-key dev-key``
and point ``SO_FMCSA_BASE_URL`` at ``http://127.0.0.1:8081/qc/services``.
Production code never imports this package.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from superior_one.simulators.server import ServerThread

QC_PREFIX = "/qc/services/"
SAMPLE_FILES = {
    "carriers/158121": "carrier_158121.json",
    "carriers/53467/authority": "authority_53467.json",
    "carriers/44110/basics": "basics_44110.json",
    "carriers/885213/oos": "oos_885213.json",
    "carriers/44110/docket-numbers": "docket_numbers_44110.json",
    "carriers/44110/mc-numbers": "docket_numbers_44110.json",
    "carriers/53467/cargo-carried": "cargo_carried_53467.json",
    "carriers/53467/operation-classification": "operation_classification_53467.json",
    "carriers/name/northwoods": "carriers_name_search_northwoods.json",
}
WEBKEY_ERROR_FILE = "error_webkey_not_found_404.json"
DOCKET_DOT_OFFSET = 2_000_000

MAINTENANCE_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Site Maintenance</title></head>
<body><h1>QCMobile is undergoing scheduled maintenance</h1>
<p>The service will be available again shortly. We apologize for the inconvenience.</p>
</body></html>
"""

FaultKind = Literal["status", "rate_limit", "timeout", "latency", "maintenance"]


def default_data_dir() -> Path | None:
    """``<repo>/../shared/data/fmcsa/qcmobile`` when it exists (the project's sample data)."""
    candidate = Path(__file__).resolve().parents[3] / "../shared/data/fmcsa/qcmobile"
    return candidate.resolve() if candidate.is_dir() else None


class Fault(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    kind: FaultKind
    count: int | None = Field(default=1, ge=1)
    status: int | None = Field(default=None, ge=100, le=599)
    delay_seconds: float | None = Field(default=None, ge=0)
    retry_after_seconds: float | None = Field(default=None, ge=0)
    # Only requests whose path (after /qc/services/) starts with this are affected.
    path_prefix: str | None = None


class PinnedResponse(BaseModel):
    path: str
    status: int = Field(default=200, ge=100, le=599)
    body: Any = None


@dataclass(slots=True)
class ServedRequest:
    at: float  # arrival, seconds since the epoch
    path: str
    status: int = 0  # 0 until the reply is sent


@dataclass
class SimulatorState:
    """Faults, pinned replies and the request log; safe to change from another thread."""

    web_key: str
    data_dir: Path | None = None
    faults: list[Fault] = field(default_factory=list)
    pinned: dict[str, PinnedResponse] = field(default_factory=dict)
    served: list[ServedRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def pin(self, response: PinnedResponse) -> None:
        with self._lock:
            self.pinned[response.path.strip("/")] = response

    def clear_pinned(self) -> None:
        with self._lock:
            self.pinned.clear()

    def requests(self) -> list[ServedRequest]:
        with self._lock:
            return list(self.served)

    def clear_requests(self) -> None:
        with self._lock:
            self.served.clear()

    def take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.path_prefix and not path.startswith(fault.path_prefix.strip("/")):
                    continue
                if fault.count is not None:
                    remaining = fault.count - 1
                    if remaining <= 0:
                        self.faults.remove(fault)
                    else:
                        fault.count = remaining
                return fault
        return None

    def record(self, path: str) -> ServedRequest:
        served = ServedRequest(at=time.time(), path=path)
        with self._lock:
            self.served.append(served)
        return served


def create_app(state: SimulatorState) -> FastAPI:
    app = FastAPI(title="FMCSA QCMobile simulator", openapi_url=None, docs_url=None)
    app.state.simulator = state

    @app.post("/__sim/faults")
    async def add_faults(faults: Fault | list[Fault]) -> dict[str, int]:
        for fault in faults if isinstance(faults, list) else [faults]:
            state.add_fault(fault)
        return {"faults": len(state.faults)}

    @app.delete("/__sim/faults")
    async def clear_faults() -> dict[str, int]:
        state.clear_faults()
        return {"faults": 0}

    @app.put("/__sim/responses")
    async def pin_response(response: PinnedResponse) -> dict[str, int]:
        state.pin(response)
        return {"pinned": len(state.pinned)}

    @app.delete("/__sim/responses")
    async def clear_pinned() -> dict[str, int]:
        state.clear_pinned()
        return {"pinned": 0}

    @app.get("/__sim/requests")
    async def served() -> dict[str, list[dict[str, Any]]]:
        return {
            "requests": [{"at": r.at, "path": r.path, "status": r.status} for r in state.requests()]
        }

    @app.delete("/__sim/requests")
    async def clear_served() -> dict[str, int]:
        state.clear_requests()
        return {"requests": 0}

    @app.get(QC_PREFIX + "{path:path}")
    async def qc(path: str, request: Request) -> Response:
        path = path.strip("/")
        # Logged on arrival, so a request held by a timeout fault is counted too.
        served = state.record(path)
        response = await _answer(state, path, request.query_params.get("webKey"))
        served.status = response.status_code
        return response

    return app


async def _answer(state: SimulatorState, path: str, web_key: str | None) -> Response:
    fault = state.take_fault(path)
    if fault is not None:
        faulted = await _apply_fault(fault)
        if faulted is not None:
            return faulted

    if web_key != state.web_key:
        return JSONResponse(_webkey_error(state.data_dir), status_code=404)

    pinned = state.pinned.get(path)
    if pinned is not None:
        return JSONResponse(pinned.body, status_code=pinned.status)

    sample = _sample(state.data_dir, path)
    if sample is not None:
        return JSONResponse(sample)

    body = generated_reply(path)
    if body is None:
        return JSONResponse({"content": "Resource not found", "retrievalDate": _now()}, 404)
    return JSONResponse(body)


async def _apply_fault(fault: Fault) -> Response | None:
    if fault.kind == "latency":
        await asyncio.sleep(fault.delay_seconds or 0.5)
        return None
    if fault.kind == "timeout":
        await asyncio.sleep(fault.delay_seconds if fault.delay_seconds is not None else 30.0)
        return None
    if fault.kind == "maintenance":
        return HTMLResponse(MAINTENANCE_PAGE, status_code=fault.status or 200)
    if fault.kind == "rate_limit":
        headers = {}
        if fault.retry_after_seconds is not None:
            headers["Retry-After"] = f"{fault.retry_after_seconds:g}"
        return JSONResponse(
            {"content": "Too many requests", "retrievalDate": _now()},
            status_code=429,
            headers=headers,
        )
    return JSONResponse(
        {"content": "Internal server error", "retrievalDate": _now()},
        status_code=fault.status or 503,
    )


def _sample(data_dir: Path | None, path: str) -> Any:
    if data_dir is None:
        return None
    name = SAMPLE_FILES.get(path.lower())
    if name is None or not (data_dir / name).is_file():
        return None
    return json.loads((data_dir / name).read_text(encoding="utf-8"))


def _webkey_error(data_dir: Path | None) -> Any:
    if data_dir is not None and (data_dir / WEBKEY_ERROR_FILE).is_file():
        return json.loads((data_dir / WEBKEY_ERROR_FILE).read_text(encoding="utf-8"))
    return {
        "content": "Webkey not found",
        "retrievalDate": _now(),
        "_links": {"self": {"href": "https://mobile.fmcsa.dot.gov/qc"}},
    }


def _now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


# Generated replies ---------------------------------------------------------

_NAME_FIRST = [
    "PRAIRIE",
    "NORTHFIELD",
    "IRON RANGE",
    "BLUE RIVER",
    "GRANITE",
    "LAKESHORE",
    "HIGH PLAINS",
    "RED CEDAR",
    "TRI-STATE",
    "SUMMIT",
    "BADGER",
    "COPPER HILL",
]
_NAME_SECOND = [
    "FREIGHT",
    "HAULING",
    "TRANSPORT",
    "CARRIERS",
    "LOGISTICS",
    "TRUCKING",
    "EXPRESS",
    "AGGREGATE HAULERS",
]
_NAME_SUFFIX = ["LLC", "INC", "CO", "CORP"]
_PLACES = [
    ("MARINETTE", "WI", "54143"),
    ("DES MOINES", "IA", "50309"),
    ("OMAHA", "NE", "68102"),
    ("SIOUX FALLS", "SD", "57104"),
    ("FARGO", "ND", "58102"),
    ("ROCHESTER", "MN", "55901"),
    ("PEORIA", "IL", "61602"),
    ("TOPEKA", "KS", "66603"),
]
_BASICS = [
    (11, "Unsafe Driving", "Unsafe Driving", "65"),
    (12, "HOS Compliance", "Hours-of-Service Compliance", "65"),
    (13, "Driver Fitness", "Driver Fitness", "80"),
    (14, "Drugs/Alcohol", "Controlled Substances/Alcohol", "80"),
    (15, "Vehicle Maint.", "Vehicle Maintenance", "80"),
]
_CARGO = [
    (1, "General Freight"),
    (6, "Logs, Poles, Beams, Lumber"),
    (7, "Building Materials"),
    (9, "Machinery, Large Objects"),
    (22, "Commodities Dry Bulk"),
    (28, "Construction"),
]


def _rng(number: int, salt: str) -> random.Random:
    # Seeded per number so every run serves the same reply; not for security.
    return random.Random(f"{salt}:{number}")  # noqa: S311


def _links(dot: int) -> dict[str, Any]:
    base = f"https://mobile.fmcsa.dot.gov/qc/services/carriers/{dot}"
    return {
        "basics": {"href": f"{base}/basics"},
        "cargo carried": {"href": f"{base}/cargo-carried"},
        "operation classification": {"href": f"{base}/operation-classification"},
        "docket numbers": {"href": f"{base}/docket-numbers"},
        "carrier active-For-hire authority": {"href": f"{base}/authority"},
        "self": {"href": base},
    }


def mc_for_dot(dot: int) -> int:
    """Return the MC number of a generated carrier (the docket lookup in reverse)."""
    return dot - DOCKET_DOT_OFFSET if dot > DOCKET_DOT_OFFSET else 100_000 + dot % 900_000


def generated_carrier(dot: int) -> dict[str, Any] | None:
    """Build the ``carrier`` object served for ``dot``; ``None`` for the unknown profile."""
    profile = dot % 100
    if profile == 0:
        return None
    rng = _rng(dot, "carrier")
    city, state, zipcode = rng.choice(_PLACES)
    units = rng.randint(1, 400)
    allowed = "N" if profile in {1, 2} else "Y"
    on_file = "0" if profile == 3 else rng.choice(["750", "1000", "1000", "2000", "5000"])
    driver_insp = rng.randint(0, 300)
    vehicle_insp = rng.randint(0, 200)
    return {
        "allowedToOperate": allowed,
        "bipdInsuranceOnFile": on_file,
        "bipdInsuranceRequired": "Y",
        "bipdRequiredAmount": "750",
        "bondInsuranceOnFile": "0",
        "bondInsuranceRequired": "u",
        "brokerAuthorityStatus": "N",
        "cargoInsuranceOnFile": "0",
        "cargoInsuranceRequired": "u",
        "carrierOperation": {"carrierOperationCode": "A", "carrierOperationDesc": "Interstate"},
        "censusTypeId": {"censusType": "C", "censusTypeDesc": "CARRIER", "censusTypeId": 1},
        "commonAuthorityStatus": "I" if profile == 1 else "A",
        "contractAuthorityStatus": "N" if profile == 1 else "A",
        "crashTotal": rng.randint(0, 20),
        "dbaName": None,
        "dotNumber": dot,
        "driverInsp": driver_insp,
        "driverOosInsp": driver_insp // 20,
        "driverOosRate": round(100 * (driver_insp // 20) / driver_insp, 2) if driver_insp else 0,
        "driverOosRateNationalAverage": "5.51",
        "fatalCrash": 0,
        "hazmatInsp": 0,
        "hazmatOosInsp": 0,
        "hazmatOosRate": 0,
        "hazmatOosRateNationalAverage": "4.5",
        "injCrash": rng.randint(0, 3),
        "isPassengerCarrier": "N",
        "issScore": None,
        "legalName": " ".join(
            (rng.choice(_NAME_FIRST), rng.choice(_NAME_SECOND), rng.choice(_NAME_SUFFIX))
        ),
        "mcs150Outdated": "N",
        "oosDate": "2024-05-14" if profile == 2 else None,
        "oosRateNationalAverageYear": "2009-2010",
        "phyCity": city,
        "phyCountry": "US",
        "phyState": state,
        "phyStreet": f"{rng.randint(100, 9999)} EXAMPLE RD",
        "phyZipcode": zipcode,
        "reviewDate": None,
        "reviewType": None,
        "safetyRating": rng.choice(["S", None, None]),
        "safetyRatingDate": None,
        "safetyReviewDate": None,
        "safetyReviewType": None,
        "snapshotDate": None,
        "statusCode": "A",
        "totalDrivers": units + rng.randint(0, 20),
        "totalPowerUnits": units,
        "towawayCrash": rng.randint(0, 10),
        "vehicleInsp": vehicle_insp,
        "vehicleOosInsp": vehicle_insp // 5,
        "vehicleOosRate": round(100 * (vehicle_insp // 5) / vehicle_insp, 2) if vehicle_insp else 0,
        "vehicleOosRateNationalAverage": "20.72",
    }


def generated_reply(path: str) -> dict[str, Any] | None:
    """Build the QCMobile reply for ``path``; ``None`` for a path QCMobile does not serve."""
    parts = path.split("/")
    if len(parts) < 2 or parts[0] != "carriers":
        return None
    if len(parts) == 3 and parts[1] == "docket-number" and parts[2].isdigit():
        return _docket_lookup(int(parts[2]))
    if len(parts) == 3 and parts[1] == "name":
        return {"content": [], "retrievalDate": _now()}
    if not parts[1].isdigit():
        return None
    dot = int(parts[1])
    if len(parts) == 2:
        carrier = generated_carrier(dot)
        content = None if carrier is None else {"_links": _links(dot), "carrier": carrier}
        return {"content": content, "retrievalDate": _now()}
    builders = {
        "authority": _authority,
        "oos": _oos,
        "basics": _basics,
        "docket-numbers": _docket_numbers,
        "mc-numbers": _docket_numbers,
        "cargo-carried": _cargo,
        "operation-classification": _operation_classes,
    }
    builder = builders.get(parts[2]) if len(parts) == 3 else None
    if builder is None:
        return None
    return {"content": builder(dot), "retrievalDate": _now()}


def _docket_lookup(mc: int) -> dict[str, Any]:
    if mc % 100 == 0:
        return {"content": [], "retrievalDate": _now()}
    dots = [DOCKET_DOT_OFFSET + mc]
    if mc % 100 == 99:
        dots.append(DOCKET_DOT_OFFSET + mc + 50_000_000)
    items = []
    for dot in dots:
        carrier = generated_carrier(dot)
        if carrier is not None:
            links = {k: v for k, v in _links(dot).items() if k != "self"}
            items.append({"_links": links, "carrier": carrier})
    return {"content": items, "retrievalDate": _now()}


def _authority(dot: int) -> list[dict[str, Any]]:
    carrier = generated_carrier(dot)
    if carrier is None:
        return []
    applicant = _rng(dot, "applicant").randint(1000, 999_999)
    return [
        {
            "carrierAuthority": {
                "applicantID": applicant,
                "authority": "N",
                "authorizedForBroker": "N",
                "authorizedForHouseholdGoods": "N",
                "authorizedForPassenger": "N",
                "authorizedForProperty": "Y",
                "brokerAuthorityStatus": carrier["brokerAuthorityStatus"],
                "commonAuthorityStatus": carrier["commonAuthorityStatus"],
                "contractAuthorityStatus": carrier["contractAuthorityStatus"],
                "docketNumber": mc_for_dot(dot),
                "dotNumber": dot,
                "prefix": "MC",
            },
            "_links": {
                "self": {
                    "href": f"https://mobile.fmcsa.dot.gov/qc/services/carriers/{dot}"
                    f"/authority/{applicant}"
                }
            },
        }
    ]


def _oos(dot: int) -> list[dict[str, Any]]:
    if dot % 100 != 2:
        return []
    order_id = _rng(dot, "oos").randint(1000, 99_999)
    return [
        {
            "oos": {
                "dotNumber": dot,
                "id": order_id,
                "oosDate": "2024-05-14",
                "oosReason": "NOP",
                "oosReasonDescription": "90 day failure to pay fine",
            },
            "_links": {
                "self": {
                    "href": f"https://mobile.fmcsa.dot.gov/qc/services/carriers/{dot}/oos/{order_id}"
                }
            },
        }
    ]


def _basics(dot: int) -> list[dict[str, Any]]:
    rng = _rng(dot, "basics")
    items = []
    for basics_id, code, short, threshold in _BASICS:
        percentile = rng.randint(0, 99)
        items.append(
            {
                "basic": {
                    "basicsPercentile": f"{percentile}%",
                    "basicsRunDate": "2024-07-26T05:00:00.000+0000",
                    "basicsType": {
                        "basicsCode": code,
                        "basicsCodeMcmis": None,
                        "basicsId": basics_id,
                        "basicsLongDesc": None,
                        "basicsShortDesc": short,
                    },
                    "basicsViolationThreshold": threshold,
                    "exceededFMCSAInterventionThreshold": "Y"
                    if percentile >= int(threshold)
                    else "N",
                    "id": {"basicsId": basics_id, "dotNumber": dot},
                    "measureValue": f"{rng.uniform(0, 3):.2f}",
                    "onRoadPerformanceThresholdViolationIndicator": "N",
                    "seriousViolationFromInvestigationPast12MonthIndicator": "N",
                    "totalInspectionWithViolation": rng.randint(0, 100),
                    "totalViolation": rng.randint(0, 150),
                },
                "dotNumber": None,
                "_links": {
                    "self": {
                        "href": f"https://mobile.fmcsa.dot.gov/qc/services/carriers/{dot}"
                        f"/basics/{basics_id}"
                    }
                },
            }
        )
    return items


def _docket_numbers(dot: int) -> list[dict[str, Any]]:
    return [
        {
            "docketNumber": mc_for_dot(dot),
            "docketNumberId": _rng(dot, "docket").randint(10_000, 999_999),
            "dotNumber": dot,
            "prefix": "MC",
        }
    ]


def _cargo(dot: int) -> list[dict[str, Any]]:
    chosen = sorted(_rng(dot, "cargo").sample(_CARGO, 3))
    return [
        {"cargoClassDesc": desc, "id": {"cargoClassId": cargo_id, "dotNumber": dot}}
        for cargo_id, desc in chosen
    ]


def _operation_classes(dot: int) -> list[dict[str, Any]]:
    return [
        {
            "id": {"dotNumber": dot, "operationClassId": 1},
            "operationClassDesc": "Authorized For Hire",
        }
    ]


# Running it ----------------------------------------------------------------


class SimulatorServer:
    """The simulator on 127.0.0.1 in a background thread, for tests and scripts.

    ``port=0`` lets the operating system pick a free port; read it back from
    :attr:`port` after :meth:`start`. Use as a context manager or call
    :meth:`start` and :meth:`stop`; faults and pinned replies go through
    :attr:`state` or the admin endpoints.
    """

    def __init__(
        self,
        *,
        web_key: str,
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.state = SimulatorState(web_key=web_key, data_dir=data_dir)
        self._thread = ServerThread(create_app(self.state), host=host, port=port)

    @property
    def port(self) -> int:
        return self._thread.port

    @property
    def base_url(self) -> str:
        """The value for ``SO_FMCSA_BASE_URL``."""
        return self._thread.base_url + QC_PREFIX.rstrip("/")

    @property
    def admin_url(self) -> str:
        return self._thread.base_url + "/__sim"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def __enter__(self) -> SimulatorServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _parse_fault(text: str) -> Fault:
    # "maintenance", "status=502:3" (3 requests), "timeout=6:1", "latency=0.5"
    spec, _, count = text.partition(":")
    kind, _, value = spec.partition("=")
    fields: dict[str, Any] = {"kind": kind, "count": int(count) if count else None}
    if value:
        option = {
            "status": "status",
            "maintenance": "status",
            "timeout": "delay_seconds",
            "latency": "delay_seconds",
            "rate_limit": "retry_after_seconds",
        }.get(kind)
        if option is None:
            raise argparse.ArgumentTypeError(f"fault {text!r} takes no value")
        fields[option] = float(value) if option != "status" else int(value)
    return Fault.model_validate(fields)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local FMCSA QCMobile simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--web-key", required=True, help="the webKey requests must carry")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="directory of QCMobile sample replies (default: ../shared/data/fmcsa/qcmobile)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        help="fault active from start-up, e.g. maintenance, status=502:3, timeout=6:1, "
        "rate_limit=2, latency=0.3 (repeatable)",
    )
    args = parser.parse_args(argv)
    state = SimulatorState(web_key=args.web_key, data_dir=args.data_dir)
    for text in args.fault:
        state.add_fault(_parse_fault(text))
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()

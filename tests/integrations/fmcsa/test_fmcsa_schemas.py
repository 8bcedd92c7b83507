"""Parsing of every QCMobile sample reply and of the shapes QCMobile varies."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from superior_one.integrations.fmcsa import schemas
from superior_one.integrations.fmcsa.errors import FmcsaResponseError
from superior_one.integrations.fmcsa.schemas import Flag


def _load(directory: Path, name: str) -> Any:
    return json.loads((directory / name).read_text(encoding="utf-8"))


class TestCarrierSample:
    @pytest.fixture
    def carrier(self, qcmobile_dir: Path) -> schemas.CarrierRecord:
        record = schemas.parse_carrier(_load(qcmobile_dir, "carrier_158121.json"))
        assert record is not None
        return record

    def test_parse_carrier_reads_identity(self, carrier: schemas.CarrierRecord) -> None:
        assert (carrier.dot_number, carrier.legal_name) == (158121, "NORTHWOODS TRUCKING INC")

    def test_parse_carrier_reads_thousands_of_dollars_as_cents(
        self, carrier: schemas.CarrierRecord
    ) -> None:
        # "1000" thousands of USD on file is $1,000,000; "750" required is $750,000.
        assert carrier.bipd_insurance_on_file_cents == 1_000_000 * 100
        assert carrier.bipd_required_amount_cents == 750_000 * 100

    def test_parse_carrier_reads_u_as_unknown(self, carrier: schemas.CarrierRecord) -> None:
        assert carrier.cargo_insurance_required is Flag.UNKNOWN

    def test_parse_carrier_reads_flags_and_authority(self, carrier: schemas.CarrierRecord) -> None:
        assert carrier.allowed_to_operate is Flag.YES
        assert carrier.common_authority_status == "A"
        assert carrier.broker_authority_status == "N"

    def test_parse_carrier_reads_dates_and_nulls(self, carrier: schemas.CarrierRecord) -> None:
        assert carrier.safety_rating_date == date(1996, 4, 25)
        assert carrier.oos_date is None
        assert carrier.dba_name is None

    def test_parse_carrier_reads_nested_operation(self, carrier: schemas.CarrierRecord) -> None:
        assert carrier.carrier_operation is not None
        assert carrier.carrier_operation.carrier_operation_desc == "Interstate"


def test_carrier_record_round_trips_through_dump(qcmobile_dir: Path) -> None:
    record = schemas.parse_carrier(_load(qcmobile_dir, "carrier_158121.json"))
    assert record is not None
    dumped = record.model_dump(by_alias=True)
    # Amounts are dumped as cents under our own names, never under FMCSA's.
    assert dumped["bipdInsuranceOnFileCents"] == 100_000_000
    assert "bipdInsuranceOnFile" not in dumped
    assert schemas.CarrierRecord.model_validate(dumped) == record
    assert schemas.CarrierRecord.model_validate(record.model_dump()) == record


def test_retrieval_date_reads_offset_without_colon(qcmobile_dir: Path) -> None:
    body = _load(qcmobile_dir, "carrier_158121.json")
    assert schemas.retrieval_date(body) == datetime(2021, 2, 28, 6, 33, 31, 490000, tzinfo=UTC)


def test_parse_carriers_reads_name_search_list(qcmobile_dir: Path) -> None:
    records = schemas.parse_carriers(_load(qcmobile_dir, "carriers_name_search_northwoods.json"))
    assert [r.dot_number for r in records] == [753076, 158121]
    assert records[0].dba_name == "NORTHWOODS HAULING AND EXCAVATING"
    assert records[0].bipd_insurance_on_file_cents == 0
    assert records[0].is_passenger_carrier is Flag.UNKNOWN


def test_parse_authority_reads_sample(qcmobile_dir: Path) -> None:
    (authority,) = schemas.parse_authority(_load(qcmobile_dir, "authority_53467.json"))
    assert authority.applicant_id == 8960  # wire name "applicantID"
    assert (authority.prefix, authority.docket_number) == ("MC", 138328)
    assert authority.authorized_for_property is Flag.YES
    assert authority.authorized_for_passenger is Flag.NO


def test_parse_basics_reads_sample(qcmobile_dir: Path) -> None:
    basics = schemas.parse_basics(_load(qcmobile_dir, "basics_44110.json"))
    assert len(basics) == 5
    hos = basics[1]
    assert hos.basics_type is not None
    assert hos.basics_type.basics_code == "HOS Compliance"
    assert hos.basics_percentile == 57
    assert hos.measure_value == Decimal("0.18")
    # Wire name "exceededFMCSAInterventionThreshold": matched without regard to case.
    assert hos.exceeded_fmcsa_intervention_threshold is Flag.YES


def test_parse_out_of_service_reads_sample(qcmobile_dir: Path) -> None:
    orders = schemas.parse_out_of_service(_load(qcmobile_dir, "oos_885213.json"))
    assert [o.id for o in orders] == [2992, 2993]
    assert orders[0].oos_date == date(2004, 6, 4)
    assert orders[0].oos_reason_description == "90 day failure to pay fine"


def test_parse_docket_numbers_reads_sample(qcmobile_dir: Path) -> None:
    (docket,) = schemas.parse_docket_numbers(_load(qcmobile_dir, "docket_numbers_44110.json"))
    assert (docket.prefix, docket.docket_number, docket.dot_number) == ("MC", 1515, 44110)


def test_parse_cargo_carried_reads_sample(qcmobile_dir: Path) -> None:
    cargo = schemas.parse_cargo_carried(_load(qcmobile_dir, "cargo_carried_53467.json"))
    assert len(cargo) == 17
    assert cargo[-1].cargo_class_desc == "Construction"
    assert cargo[-1].id is not None
    assert cargo[-1].id.cargo_class_id == 28


def test_parse_operation_classification_reads_sample(qcmobile_dir: Path) -> None:
    classes = schemas.parse_operation_classification(
        _load(qcmobile_dir, "operation_classification_53467.json")
    )
    assert classes[0].operation_class_desc == "Authorized For Hire"
    assert len(classes) == 3


def test_content_message_reads_webkey_error_sample(qcmobile_dir: Path) -> None:
    body = _load(qcmobile_dir, "error_webkey_not_found_404.json")
    assert schemas.content_message(body) == "Webkey not found"
    assert schemas.parse_carrier(body) is None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, []),
        ("No carrier found", []),
        ({"carrier": {"dotNumber": 1, "legalName": "A"}}, [1]),
        ([{"carrier": {"dotNumber": 1, "legalName": "A"}}, {"carrier": None}], [1]),
        ([], []),
    ],
    ids=["null", "string", "object", "list", "empty-list"],
)
def test_parse_carriers_accepts_every_content_shape(content: Any, expected: list[int]) -> None:
    records = schemas.parse_carriers({"content": content})
    assert [r.dot_number for r in records] == expected


def test_parse_carrier_missing_carrier() -> None:
    assert schemas.parse_carrier({"content": {"_links": {}}}) is None


def test_parse_carrier_missing_legal_name() -> None:
    assert schemas.parse_carrier({"content": {"carrier": {"dotNumber": 9999999}}}) is None


def test_parse_carrier_matches_keys_without_case() -> None:
    body = {"content": {"carrier": {"DOTNumber": 5, "LegalName": "X", "AllowedToOperate": "y"}}}
    record = schemas.parse_carrier(body)
    assert record is not None
    assert (record.dot_number, record.allowed_to_operate) == (5, Flag.YES)


@pytest.mark.parametrize(
    ("raw", "cents"),
    [("750", 75_000_000), ("0", 0), ("u", None), ("", None), (None, None), ("N", 0), ("Y", None),
     (1000, 100_000_000), ("0.5", 50_000)],
)  # fmt: skip
def test_parse_carrier_reads_insurance_amounts(raw: Any, cents: int | None) -> None:
    body = {"content": {"carrier": {"dotNumber": 1, "legalName": "A", "bipdInsuranceOnFile": raw}}}
    record = schemas.parse_carrier(body)
    assert record is not None
    assert record.bipd_insurance_on_file_cents == cents


@pytest.mark.parametrize("raw", ["lots", "-5"])
def test_parse_carrier_rejects_unreadable_amount(raw: str) -> None:
    body = {"content": {"carrier": {"dotNumber": 1, "legalName": "A", "bipdInsuranceOnFile": raw}}}
    with pytest.raises(FmcsaResponseError):
        schemas.parse_carrier(body)


@pytest.mark.parametrize("raw", ["N", "u", None, "", "maybe"])
def test_parse_carrier_allowed_only_for_y(raw: Any) -> None:
    body = {"content": {"carrier": {"dotNumber": 1, "legalName": "A", "allowedToOperate": raw}}}
    record = schemas.parse_carrier(body)
    assert record is not None
    assert record.allowed_to_operate is not Flag.YES


def test_parse_carrier_rejects_non_object_body() -> None:
    with pytest.raises(FmcsaResponseError):
        schemas.parse_carrier(["not", "an", "envelope"])


def test_parse_carrier_rejects_carrier_without_dot_number_type() -> None:
    with pytest.raises(FmcsaResponseError):
        schemas.parse_carrier({"content": {"carrier": {"dotNumber": "abc", "legalName": "A"}}})

"""Typed models of QCMobile replies and the functions that read them.

QCMobile wraps every reply in ``{"content": ..., "retrievalDate": ...}``. The
``content`` member is an object for one carrier, a list for searches and
sub-resources, a string for errors ("Webkey not found") and ``null`` when
nothing matched, so every parser first turns it into a list of objects.

Field names arrive in camelCase with irregular capitals (``applicantID``,
``exceededFMCSAInterventionThreshold``) that have been seen to vary, so keys
are matched without regard to case.

Units: insurance amounts arrive as strings in thousands of US dollars
(``"750"`` is $750,000) and are held here as integer cents. ``"u"`` means
unknown and becomes ``None``; an unknown amount never counts as coverage.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from superior_one.integrations.fmcsa.errors import FmcsaResponseError

CENTS_PER_THOUSAND_USD = 1000 * 100


class Flag(StrEnum):
    """A QCMobile Y/N indicator; anything else (``"u"``, missing) is UNKNOWN."""

    YES = "Y"
    NO = "N"
    UNKNOWN = "u"


def _to_flag(value: Any) -> Flag:
    if isinstance(value, bool):
        return Flag.YES if value else Flag.NO
    if isinstance(value, str):
        upper = value.strip().upper()
        if upper == "Y":
            return Flag.YES
        if upper == "N":
            return Flag.NO
    return Flag.UNKNOWN


def _thousands_usd_to_cents(value: Any) -> int | None:
    """``"750"`` -> 75_000_000 cents; ``"u"``, ``""`` and ``None`` -> unknown.

    Some replies carry a Y/N flag where an amount is expected: ``"N"`` means
    nothing on file (0), ``"Y"`` means something on file of unknown size.
    """
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if text.upper() == "N":
        return 0
    if text == "" or text.upper() in {"U", "Y"}:
        return None
    try:
        thousands = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"insurance amount {text!r} is not a number of thousands") from exc
    if not thousands.is_finite() or thousands < 0:
        raise ValueError(f"insurance amount {text!r} is not a non-negative number")
    return int(thousands * CENTS_PER_THOUSAND_USD)


def _percent(value: Any) -> int | None:
    if value is None:
        return None
    text = str(value).strip().rstrip("%").strip()
    if text == "":
        return None
    return int(Decimal(text))


def _upper_or_none(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().upper()
    return text or None


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and value.strip() == "":
        return None
    return value


YesNo = Annotated[Flag, BeforeValidator(_to_flag)]
Percent = Annotated[int | None, BeforeValidator(_percent)]
Code = Annotated[str | None, BeforeValidator(_upper_or_none)]
OptionalDate = Annotated[date | None, BeforeValidator(_blank_to_none)]
OptionalDatetime = Annotated[datetime | None, BeforeValidator(_blank_to_none)]


class QcModel(BaseModel):
    """Base of every QCMobile shape: camelCase aliases matched case-insensitively."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    _aliases_by_lower: ClassVar[dict[str, str]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._aliases_by_lower = {
            (field.alias or name).lower(): field.alias or name
            for name, field in cls.model_fields.items()
        }

    @model_validator(mode="before")
    @classmethod
    def _match_keys_without_case(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        matched: dict[str, Any] = {}
        for raw_key, value in data.items():
            key = str(raw_key)
            alias = cls._aliases_by_lower.get(key.lower(), key)
            # An exact spelling wins over a case-folded one if both are present.
            if alias in matched and key != alias:
                continue
            matched[alias] = value
        return cls._convert_wire_values(matched)

    @classmethod
    def _convert_wire_values(cls, matched: dict[str, Any]) -> dict[str, Any]:
        """Turn FMCSA's units into ours; the default keeps every value as it is."""
        return matched


class CarrierOperation(QcModel):
    carrier_operation_code: Code = None
    carrier_operation_desc: str | None = None


class CarrierRecord(QcModel):
    """``content.carrier`` of ``/carriers/{dot}`` and of carrier searches."""

    dot_number: int
    legal_name: str | None = None
    dba_name: str | None = None
    status_code: Code = None
    allowed_to_operate: YesNo = Flag.UNKNOWN
    oos_date: OptionalDate = None

    common_authority_status: Code = None
    contract_authority_status: Code = None
    broker_authority_status: Code = None

    bipd_insurance_required: YesNo = Flag.UNKNOWN
    bipd_required_amount_cents: int | None = None
    bipd_insurance_on_file_cents: int | None = None
    cargo_insurance_required: YesNo = Flag.UNKNOWN
    cargo_insurance_on_file_cents: int | None = None
    bond_insurance_required: YesNo = Flag.UNKNOWN
    bond_insurance_on_file_cents: int | None = None

    safety_rating: Code = None
    safety_rating_date: OptionalDate = None
    safety_review_date: OptionalDate = None
    safety_review_type: Code = None
    mcs150_outdated: YesNo = Flag.UNKNOWN
    is_passenger_carrier: YesNo = Flag.UNKNOWN
    carrier_operation: CarrierOperation | None = None

    total_power_units: int | None = None
    total_drivers: int | None = None
    crash_total: int | None = None
    fatal_crash: int | None = None
    inj_crash: int | None = None
    towaway_crash: int | None = None
    driver_insp: int | None = None
    driver_oos_insp: int | None = None
    driver_oos_rate: float | None = None
    vehicle_insp: int | None = None
    vehicle_oos_insp: int | None = None
    vehicle_oos_rate: float | None = None
    hazmat_insp: int | None = None
    hazmat_oos_insp: int | None = None
    hazmat_oos_rate: float | None = None

    phy_street: str | None = None
    phy_city: str | None = None
    phy_state: str | None = None
    phy_zipcode: str | None = None
    phy_country: str | None = None

    @classmethod
    def _convert_wire_values(cls, matched: dict[str, Any]) -> dict[str, Any]:
        # FMCSA's amount fields hold thousands of USD; ours, named "...Cents",
        # hold cents, so a dumped record validates back to the same values.
        for key in list(matched):
            field_alias = _AMOUNT_FIELDS_BY_LOWER_WIRE_NAME.get(key.lower())
            if field_alias is None:
                continue
            thousands = matched.pop(key)
            if field_alias not in matched:
                matched[field_alias] = _thousands_usd_to_cents(thousands)
        return matched


_AMOUNT_FIELDS_BY_LOWER_WIRE_NAME = {
    "bipdrequiredamount": "bipdRequiredAmountCents",
    "bipdinsuranceonfile": "bipdInsuranceOnFileCents",
    "cargoinsuranceonfile": "cargoInsuranceOnFileCents",
    "bondinsuranceonfile": "bondInsuranceOnFileCents",
}


class CarrierAuthority(QcModel):
    """``content[].carrierAuthority`` of ``/carriers/{dot}/authority``."""

    applicant_id: int | None = None
    dot_number: int | None = None
    docket_number: int | None = None
    prefix: Code = None
    authority: Code = None
    common_authority_status: Code = None
    contract_authority_status: Code = None
    broker_authority_status: Code = None
    authorized_for_property: YesNo = Flag.UNKNOWN
    authorized_for_passenger: YesNo = Flag.UNKNOWN
    authorized_for_household_goods: YesNo = Flag.UNKNOWN
    authorized_for_broker: YesNo = Flag.UNKNOWN


class OutOfServiceOrder(QcModel):
    """``content[].oos`` of ``/carriers/{dot}/oos``."""

    id: int | None = None
    dot_number: int | None = None
    oos_date: OptionalDate = None
    oos_reason: Code = None
    oos_reason_description: str | None = None


class BasicType(QcModel):
    basics_id: int | None = None
    basics_code: str | None = None
    basics_short_desc: str | None = None


class BasicMeasure(QcModel):
    """``content[].basic`` of ``/carriers/{dot}/basics`` (one SMS BASIC)."""

    basics_type: BasicType | None = None
    basics_percentile: Percent = None
    basics_run_date: OptionalDatetime = None
    basics_violation_threshold: Percent = None
    exceeded_fmcsa_intervention_threshold: YesNo = Flag.UNKNOWN
    on_road_performance_threshold_violation_indicator: YesNo = Flag.UNKNOWN
    serious_violation_from_investigation_past12_month_indicator: YesNo = Flag.UNKNOWN
    measure_value: Decimal | None = None
    total_inspection_with_violation: int | None = None
    total_violation: int | None = None


class DocketNumber(QcModel):
    """``content[]`` of ``/carriers/{dot}/docket-numbers``."""

    dot_number: int | None = None
    docket_number: int
    docket_number_id: int | None = None
    prefix: Code = None


class CargoClassId(QcModel):
    dot_number: int | None = None
    cargo_class_id: int | None = None


class CargoClass(QcModel):
    """``content[]`` of ``/carriers/{dot}/cargo-carried``."""

    id: CargoClassId | None = None
    cargo_class_desc: str | None = None


class OperationClassId(QcModel):
    dot_number: int | None = None
    operation_class_id: int | None = None


class OperationClass(QcModel):
    """``content[]`` of ``/carriers/{dot}/operation-classification``."""

    id: OperationClassId | None = None
    operation_class_desc: str | None = None


class Envelope(QcModel):
    content: Any = None
    retrieval_date: OptionalDatetime = None


def content_items(body: Any) -> list[Mapping[str, Any]]:
    """Return the reply's ``content`` as a list of objects (empty for null or a message)."""
    envelope = _envelope(body)
    content = envelope.content
    if isinstance(content, Mapping):
        return [content]
    if isinstance(content, list):
        return [item for item in content if isinstance(item, Mapping)]
    return []


def content_message(body: Any) -> str | None:
    """Return the reply's ``content`` when FMCSA sent a plain string such as an error."""
    content = _envelope(body).content
    return content if isinstance(content, str) else None


def retrieval_date(body: Any) -> datetime | None:
    return _envelope(body).retrieval_date


def parse_carrier(body: Any) -> CarrierRecord | None:
    """Parse the carrier of ``/carriers/{dot}``, or ``None`` when FMCSA has none.

    A reply without ``content.carrier`` or without a legal name is treated as
    "not found": both shapes have been seen for unknown DOT numbers.
    """
    carriers = parse_carriers(body)
    return carriers[0] if carriers else None


def parse_carriers(body: Any) -> list[CarrierRecord]:
    """Parse the carriers of a search (docket number, name); drop those without a legal name."""
    records: list[CarrierRecord] = []
    for item in content_items(body):
        raw = _member(item, "carrier")
        if raw is None and _member(item, "dotNumber") is not None:
            raw = item
        if not isinstance(raw, Mapping):
            continue
        record = _validate(CarrierRecord, raw)
        if record.legal_name:
            records.append(record)
    return records


def parse_authority(body: Any) -> list[CarrierAuthority]:
    return _wrapped_items(body, "carrierAuthority", CarrierAuthority)


def parse_out_of_service(body: Any) -> list[OutOfServiceOrder]:
    return _wrapped_items(body, "oos", OutOfServiceOrder)


def parse_basics(body: Any) -> list[BasicMeasure]:
    return _wrapped_items(body, "basic", BasicMeasure)


def parse_docket_numbers(body: Any) -> list[DocketNumber]:
    return [_validate(DocketNumber, item) for item in content_items(body)]


def parse_cargo_carried(body: Any) -> list[CargoClass]:
    return [_validate(CargoClass, item) for item in content_items(body)]


def parse_operation_classification(body: Any) -> list[OperationClass]:
    return [_validate(OperationClass, item) for item in content_items(body)]


ModelT = TypeVar("ModelT", bound=QcModel)


def _wrapped_items(body: Any, wrapper: str, model: type[ModelT]) -> list[ModelT]:
    parsed: list[ModelT] = []
    for item in content_items(body):
        raw = _member(item, wrapper)
        if isinstance(raw, Mapping):
            parsed.append(_validate(model, raw))
    return parsed


def _envelope(body: Any) -> Envelope:
    if not isinstance(body, Mapping):
        raise FmcsaResponseError(
            "FMCSA returned JSON that is not an object; expected {content, retrievalDate}."
        )
    return _validate(Envelope, body)


def _member(item: Mapping[str, Any], name: str) -> Any:
    if name in item:
        return item[name]
    lowered = name.lower()
    for key, value in item.items():
        if str(key).lower() == lowered:
            return value
    return None


def _validate(model: type[ModelT], raw: Any) -> ModelT:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        # A model-level error (an unreadable amount) has no location; show its message.
        problems = {".".join(str(p) for p in e["loc"]) or e["msg"] for e in exc.errors()}
        fields = ", ".join(sorted(problems))
        raise FmcsaResponseError(
            f"FMCSA returned a {model.__name__} with invalid fields: {fields}."
        ) from exc

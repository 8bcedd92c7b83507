"""Reader of FMCSA's operating-authority revocation file.

The file is CSV with every value quoted and a header line::

    "DOCKET_NUMBER","DOT_NUMBER","OPERATING_AUTHORITY_REGISTRATION_TYPE",
    "SERVE_DATE","REVOCATION_TYPE","EFFECTIVE_DATE"
    "MC368053","00830331","COMMON","06/26/2024","INVOLUNTARY REVOCATION","07/26/2024"

Docket numbers carry their prefix (MC, FF or MX), DOT numbers are zero-padded
to eight digits (``00000000`` means none), dates are MM/DD/YYYY and may be
empty, and the same line can appear more than once. This module only reads:
rows come out typed, bad lines come out as :class:`RevocationLineError` with
their line number, and the import decides what to do with both.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

COLUMNS = (
    "DOCKET_NUMBER",
    "DOT_NUMBER",
    "OPERATING_AUTHORITY_REGISTRATION_TYPE",
    "SERVE_DATE",
    "REVOCATION_TYPE",
    "EFFECTIVE_DATE",
)


E = TypeVar("E", bound=StrEnum)


class DocketPrefix(StrEnum):
    MC = "MC"  # motor carrier or broker
    FF = "FF"  # freight forwarder
    MX = "MX"  # Mexico-domiciled carrier


class AuthorityType(StrEnum):
    COMMON = "COMMON"
    CONTRACT = "CONTRACT"
    BROKER = "BROKER"


class RevocationType(StrEnum):
    INVOLUNTARY = "INVOLUNTARY REVOCATION"
    VOLUNTARY = "VOLUNTARY REVOCATION"


@dataclass(frozen=True, slots=True)
class RevocationRow:
    line: int
    docket_prefix: DocketPrefix
    docket_number: int
    dot_number: int | None
    # One line in the 2024-08-06 file has no type; it stays None, not guessed.
    authority_type: AuthorityType | None
    serve_date: date | None
    revocation_type: RevocationType
    effective_date: date | None

    @property
    def docket(self) -> str:
        return f"{self.docket_prefix.value}{self.docket_number}"


@dataclass(frozen=True, slots=True)
class RevocationLineError:
    line: int
    message: str
    raw: tuple[str, ...]


class RevocationFileError(ValueError):
    """The file as a whole is not a revocation file (wrong header or columns)."""


def read_revocation_file(path: Path) -> Iterator[RevocationRow | RevocationLineError]:
    """Rows of the revocation file at ``path``, read lazily."""
    # The published files are ASCII; latin-1 reads any stray byte instead of
    # failing the whole import on one name.
    with path.open(encoding="latin-1", newline="") as handle:
        yield from parse_revocations(handle)


def parse_revocations(lines: Iterable[str]) -> Iterator[RevocationRow | RevocationLineError]:
    """Typed rows from the file's lines; a bad line yields an error, not an exception.

    The header line is optional; when present it must name the documented
    columns (in any letter case). Blank lines are skipped.
    """
    reader = csv.reader(lines)
    first = True
    for fields in reader:
        index = reader.line_num
        if not fields or all(not field.strip() for field in fields):
            continue
        if first:
            first = False
            if _is_header(fields):
                continue
        if len(fields) != len(COLUMNS):
            yield RevocationLineError(
                index,
                f"expected {len(COLUMNS)} columns, found {len(fields)}",
                tuple(fields),
            )
            continue
        try:
            yield _row(index, [field.strip() for field in fields])
        except ValueError as exc:
            yield RevocationLineError(index, str(exc), tuple(fields))


def _is_header(fields: list[str]) -> bool:
    names = tuple(field.strip().upper() for field in fields)
    if names == COLUMNS:
        return True
    if names and names[0] == COLUMNS[0]:
        raise RevocationFileError(
            f"Revocation file header {names} does not match the documented columns {COLUMNS}."
        )
    return False


def _row(line: int, fields: list[str]) -> RevocationRow:
    docket, dot, authority, served, revocation, effective = fields
    prefix, number = _docket(docket)
    return RevocationRow(
        line=line,
        docket_prefix=prefix,
        docket_number=number,
        dot_number=_dot(dot),
        authority_type=_enum(AuthorityType, authority, "OPERATING_AUTHORITY_REGISTRATION_TYPE"),
        serve_date=_date(served, "SERVE_DATE"),
        revocation_type=_required_enum(RevocationType, revocation, "REVOCATION_TYPE"),
        effective_date=_date(effective, "EFFECTIVE_DATE"),
    )


def _docket(value: str) -> tuple[DocketPrefix, int]:
    text = value.upper().replace(" ", "").replace("-", "")
    prefix, digits = text[:2], text[2:]
    if prefix not in DocketPrefix.__members__ or not digits.isdigit() or int(digits) == 0:
        raise ValueError(f"DOCKET_NUMBER {value!r} is not MC, FF or MX followed by digits")
    return DocketPrefix(prefix), int(digits)


def _dot(value: str) -> int | None:
    if value == "":
        return None
    if not value.isdigit():
        raise ValueError(f"DOT_NUMBER {value!r} is not a number")
    number = int(value)
    return number or None


def _date(value: str, column: str) -> date | None:
    if value == "":
        return None
    try:
        return datetime.strptime(value, "%m/%d/%Y").date()
    except ValueError as exc:
        raise ValueError(f"{column} {value!r} is not a MM/DD/YYYY date") from exc


def _enum(kind: type[E], value: str, column: str) -> E | None:
    if value == "":
        return None
    return _required_enum(kind, value, column)


def _required_enum(kind: type[E], value: str, column: str) -> E:
    try:
        return kind(value.upper())
    except ValueError as exc:
        allowed = ", ".join(member.value for member in kind)
        raise ValueError(f"{column} {value!r} is not one of: {allowed}") from exc

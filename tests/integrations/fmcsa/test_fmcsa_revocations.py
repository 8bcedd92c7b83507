"""The FMCSA revocation file parser, on the published sample and on broken lines."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from superior_one.integrations.fmcsa.revocations import (
    AuthorityType,
    DocketPrefix,
    RevocationFileError,
    RevocationLineError,
    RevocationRow,
    RevocationType,
    parse_revocations,
    read_revocation_file,
)
from tests.integrations.fmcsa.conftest import REVOCATIONS_DIR

HEADER = (
    '"DOCKET_NUMBER","DOT_NUMBER","OPERATING_AUTHORITY_REGISTRATION_TYPE",'
    '"SERVE_DATE","REVOCATION_TYPE","EFFECTIVE_DATE"\n'
)


@pytest.fixture(scope="module")
def sample_rows() -> list[RevocationRow | RevocationLineError]:
    path = REVOCATIONS_DIR / "revocation_2024_08_06.txt"
    if not path.is_file():
        pytest.skip(f"revocation sample not found at {path.resolve()}")
    return list(read_revocation_file(path))


def _rows(items: list[RevocationRow | RevocationLineError]) -> list[RevocationRow]:
    return [item for item in items if isinstance(item, RevocationRow)]


def test_read_revocation_file_reads_every_sample_line(
    sample_rows: list[RevocationRow | RevocationLineError],
) -> None:
    # 2,245 lines: the header and 2,244 revocations, none of them malformed.
    assert len(_rows(sample_rows)) == 2244
    assert [item for item in sample_rows if isinstance(item, RevocationLineError)] == []


def test_read_revocation_file_types_first_row(
    sample_rows: list[RevocationRow | RevocationLineError],
) -> None:
    assert _rows(sample_rows)[0] == RevocationRow(
        line=2,
        docket_prefix=DocketPrefix.MC,
        docket_number=368053,
        dot_number=830331,
        authority_type=AuthorityType.COMMON,
        serve_date=date(2024, 6, 26),
        revocation_type=RevocationType.INVOLUNTARY,
        effective_date=date(2024, 7, 26),
    )


def test_read_revocation_file_counts_types(
    sample_rows: list[RevocationRow | RevocationLineError],
) -> None:
    counts = Counter(row.revocation_type for row in _rows(sample_rows))
    assert counts == {RevocationType.INVOLUNTARY: 1916, RevocationType.VOLUNTARY: 328}


def test_read_revocation_file_reads_zero_dot_as_none(
    sample_rows: list[RevocationRow | RevocationLineError],
) -> None:
    row = next(r for r in _rows(sample_rows) if r.docket == "MC633908")
    assert row.dot_number is None


def test_read_revocation_file_reads_empty_dates_as_none(
    sample_rows: list[RevocationRow | RevocationLineError],
) -> None:
    row = next(r for r in _rows(sample_rows) if r.docket == "MC280346")
    assert (row.serve_date, row.effective_date) == (None, None)


def test_read_revocation_file_missing_authority_type(
    sample_rows: list[RevocationRow | RevocationLineError],
) -> None:
    (row,) = [r for r in _rows(sample_rows) if r.authority_type is None]
    assert (row.docket, row.line) == ("MC1135707", 1221)


def test_read_revocation_file_reads_freight_forwarder_dockets(
    sample_rows: list[RevocationRow | RevocationLineError],
) -> None:
    forwarders = [r for r in _rows(sample_rows) if r.docket_prefix is DocketPrefix.FF]
    assert len(forwarders) == 3


def test_read_revocation_file_keeps_duplicate_lines(
    sample_rows: list[RevocationRow | RevocationLineError],
) -> None:
    # Deduplication is the import's job; the parser returns every line of the file.
    same = [r for r in _rows(sample_rows) if r.docket == "MC775338"]
    assert len(same) == 2


def test_parse_revocations_reports_bad_date_with_line_number() -> None:
    lines = [HEADER, '"MC1","00000001","COMMON","13/40/2024","VOLUNTARY REVOCATION",""\n']
    (error,) = parse_revocations(lines)
    assert isinstance(error, RevocationLineError)
    assert error.line == 2
    assert "SERVE_DATE" in error.message


def test_parse_revocations_reports_wrong_column_count() -> None:
    (error,) = parse_revocations([HEADER, '"MC1","00000001","COMMON"\n'])
    assert isinstance(error, RevocationLineError)
    assert "expected 6 columns" in error.message


@pytest.mark.parametrize("docket", ["XX123", "MC", "MCabc", "MC0000"])
def test_parse_revocations_reports_bad_docket(docket: str) -> None:
    line = f'"{docket}","00000001","COMMON","","VOLUNTARY REVOCATION",""\n'
    (error,) = parse_revocations([HEADER, line])
    assert isinstance(error, RevocationLineError)
    assert "DOCKET_NUMBER" in error.message


def test_parse_revocations_reports_unknown_revocation_type() -> None:
    line = '"MC1","00000001","COMMON","","SUSPENSION",""\n'
    (error,) = parse_revocations([HEADER, line])
    assert isinstance(error, RevocationLineError)
    assert "REVOCATION_TYPE" in error.message


def test_parse_revocations_continues_after_bad_line() -> None:
    lines = [
        HEADER,
        '"MC1","x","COMMON","","VOLUNTARY REVOCATION",""\n',
        '"MC2","00000002","BROKER","","VOLUNTARY REVOCATION",""\n',
    ]
    items = list(parse_revocations(lines))
    assert [type(item) for item in items] == [RevocationLineError, RevocationRow]


def test_parse_revocations_reads_file_without_header() -> None:
    (row,) = parse_revocations(['"MX12","","CONTRACT","","VOLUNTARY REVOCATION",""\n'])
    assert isinstance(row, RevocationRow)
    assert (row.docket_prefix, row.docket_number, row.dot_number) == (DocketPrefix.MX, 12, None)


def test_parse_revocations_skips_blank_lines() -> None:
    items = list(
        parse_revocations([HEADER, "\n", '"MC2","2","BROKER","","VOLUNTARY REVOCATION",""'])
    )
    assert len(items) == 1


def test_parse_revocations_rejects_unknown_header() -> None:
    with pytest.raises(RevocationFileError):
        list(parse_revocations(['"DOCKET_NUMBER","DOT","TYPE"\n']))

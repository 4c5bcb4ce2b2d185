"""Record readers: awkward CSV, JSON Lines corner cases, bounded memory, the demo sample."""

from __future__ import annotations

import io
import re
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.response import StreamingBody
from hypothesis import given, settings
from hypothesis import strategies as st

from amlproxy.core.outcome import SourceRow
from amlproxy.core.readers import detect_format, read_csv, read_jsonl, read_records
from amlproxy.core.schema import Schema, load_schema
from amlproxy.errors import InputError, RecordValidationError

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "census-income-sample.csv"
ADULT_DATA = REPO / ".." / "shared" / "data" / "census-income" / "adult.data"
ROW = (
    "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, "
    "White, Male, 2174, 0, 40, United-States, <=50K"
)


@pytest.fixture(scope="module")
def census() -> Schema:
    return load_schema("census-income")


@pytest.fixture(scope="module")
def small() -> Schema:
    """Three columns, the last one the target."""
    return Schema.from_document(
        {
            "targetAttributeName": "y",
            "attributes": [
                {"attributeName": "a", "attributeType": "NUMERIC"},
                {"attributeName": "b", "attributeType": "TEXT"},
                {"attributeName": "y", "attributeType": "BINARY"},
            ],
        },
        name="small",
    )


class Trickle:
    """A binary stream that hands out at most ``step`` bytes per read, like a slow socket."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = io.BytesIO(data)
        self._step = step

    def read(self, n: int = -1) -> bytes:
        return self._data.read(min(n, self._step) if n >= 0 else self._step)


class Generated:
    """A binary stream of ``head``, then ``size`` bytes of ``fill``, then ``tail``, made up
    as it is read: the test itself never holds the big line."""

    def __init__(self, head: bytes, fill: bytes, size: int, tail: bytes) -> None:
        self._parts: Iterator[bytes] = self._make(head, fill, size, tail)
        self._buffer = b""

    @staticmethod
    def _make(head: bytes, fill: bytes, size: int, tail: bytes) -> Iterator[bytes]:
        yield head
        block = fill * (65536 // len(fill))
        while size > 0:
            yield block[:size]
            size -= len(block)
        yield tail

    def read(self, n: int = -1) -> bytes:
        while len(self._buffer) < n:
            part = next(self._parts, None)
            if part is None:
                break
            self._buffer += part
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


def rows_of(data: bytes, schema: Schema, **kw: Any) -> list[SourceRow]:
    return list(read_csv(io.BytesIO(data), schema, **kw))


def summary(rows: list[SourceRow]) -> list[tuple[int, Any]]:
    return [(r.line, r.error if r.error else dict(r.fields or {})) for r in rows]


# --- CSV -------------------------------------------------------------------------------


def test_adult_format_row(census: Schema) -> None:
    (row,) = rows_of(ROW.encode() + b"\n\n", census)
    assert row.line == 1 and row.error is None and row.raw == ROW
    assert row.fields == dict(zip(census.column_names, ROW.split(", "), strict=True))
    assert census.validate(row.fields)["age"] == 39.0


def test_bom_crlf_quotes_and_blank_lines(small: Schema) -> None:
    data = (
        b'\xef\xbb\xbf1,plain,1\r\n\r\n   \n2, "a, b",0\r\n3,"two\r\nlines",1\n'
        b'4,"say ""hi""",0\n\n5,last,1'
    )
    assert summary(rows_of(data, small)) == [
        (1, {"a": "1", "b": "plain", "y": "1"}),
        (4, {"a": "2", "b": "a, b", "y": "0"}),
        (5, {"a": "3", "b": "two\r\nlines", "y": "1"}),
        (7, {"a": "4", "b": 'say "hi"', "y": "0"}),
        (9, {"a": "5", "b": "last", "y": "1"}),
    ]
    assert rows_of(data, small)[2].raw == '3,"two\r\nlines",1'


def test_short_rows_lack_the_target_other_counts_are_rejected(census: Schema) -> None:
    without_target = ROW.rsplit(", ", 1)[0]
    nine = ", ".join(ROW.split(", ")[:9])
    rows = rows_of(f"{without_target}\n{nine}\n{ROW}, extra\n".encode(), census)
    assert rows[0].fields is not None and "income" not in rows[0].fields
    assert census.validate(rows[0].fields)["native-country"] == "United-States"
    expected = "expected 15 fields (14 without the target 'income'), got {}"
    assert [(r.line, r.error, r.raw) for r in rows[1:]] == [
        (2, expected.format(9), nine),
        (3, expected.format(16), ROW + ", extra"),
    ]


def test_count_error_without_a_target() -> None:
    text = {"attributeType": "TEXT"}
    schema = Schema.from_document(
        {"attributes": [{"attributeName": "a", **text}, {"attributeName": "b", **text}]}
    )
    assert [r.error for r in rows_of(b"x\nx,y,z\nx,y\n", schema)] == [
        "expected 2 fields, got 1",
        "expected 2 fields, got 3",
        None,
    ]


def test_header_maps_by_name(small: Schema) -> None:
    data = b"y, b, a\n1, x, 2\n0, z\n"
    rows = rows_of(data, small, header=True)
    assert summary(rows) == [
        (2, {"y": "1", "b": "x", "a": "2"}),
        (3, "expected 3 fields (as in the header), got 2"),
    ]
    with_header_schema = Schema.from_document(
        {**small.to_aml_dict(), "dataFileContainsHeader": True}
    )
    assert summary(rows_of(data, with_header_schema))[0] == (2, {"y": "1", "b": "x", "a": "2"})
    assert rows_of(data, with_header_schema, header=False)[0].fields == {
        "a": "y",
        "b": "b",
        "y": "a",
    }


def test_header_with_unknown_column_follows_the_extra_field_policy(small: Schema) -> None:
    (row,) = rows_of(b"\xef\xbb\xbfa,b,colour\n1,x,red\n", small, header=True)
    assert row.fields == {"a": "1", "b": "x", "colour": "red"}
    with pytest.raises(RecordValidationError, match="line 2: colour: unknown field"):
        small.validate(row.fields, line=row.line)
    lenient = Schema.from_document({**small.to_aml_dict(), "extraFields": "ignore"})
    assert lenient.validate(row.fields) == {"a": 1.0, "b": "x"}


@pytest.mark.parametrize(
    ("header", "message"),
    [(b"a,b,a\n", "column 'a' twice"), (b"a,,b\n", "an empty column name")],
)
def test_bad_header_is_an_input_error(small: Schema, header: bytes, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(f"the CSV header (line 2) has {message}")):
        rows_of(b"\n" + header + b"1,2,3\n", small, header=True)


def test_invalid_utf8_rejects_the_line_and_reading_goes_on(small: Schema) -> None:
    data = b"1,ok,1\n2,caf\xe9,0\n3,ok,1\n"
    rows = rows_of(data, small)
    assert summary(rows)[1] == (2, "invalid UTF-8 at byte offset 12 (line 2)")
    assert rows[1].raw == "2,caf\ufffd,0"
    assert [r.line for r in rows] == [1, 2, 3] and rows[2].fields == {"a": "3", "b": "ok", "y": "1"}


def test_invalid_utf8_inside_a_quoted_multiline_record(small: Schema) -> None:
    rows = rows_of(b'1,"start\nbad \xff\nend",1\n2,ok,0\n', small)
    assert (rows[0].line, rows[0].error) == (1, "invalid UTF-8 at byte offset 13 (line 2)")
    assert rows[-1].line == 4 and rows[-1].fields == {"a": "2", "b": "ok", "y": "0"}


def test_over_long_records_are_rejected_and_reading_goes_on(small: Schema) -> None:
    long_line = b"9," + b"z" * 5000 + b",1\n"
    data = b"1,a,1\n" + long_line + b'2,"multi\n' + b"q" * 300 + b'",0\n3,b,0\n' + long_line[:-1]
    rows = rows_of(data, small, max_record_bytes=200)
    assert [(r.line, r.error) for r in rows] == [
        (1, None),
        (2, "record longer than 200 bytes"),
        (3, "record longer than 200 bytes"),  # a quoted record whose second line is too long
        (5, None),
        (6, "record longer than 200 bytes"),  # the last line, without a line break
    ]
    assert rows[1].raw.startswith("9,zzz") and len(rows[1].raw) <= 203
    assert rows[2].raw == '2,"multi'
    assert rows[3].fields == {"a": "3", "b": "b", "y": "0"}


def test_multiline_record_over_the_limit_in_total(small: Schema) -> None:
    data = b'1,a,1\n2,"' + b"q" * 60 + b"\n" + (b"w" * 60 + b"\n") * 100 + b'",0\n'
    rows = rows_of(data, small, max_record_bytes=200)
    assert [(r.line, r.error) for r in rows[:2]] == [
        (1, None),
        (2, "record longer than 200 bytes"),
    ]
    assert rows[1].raw == '2,"' + "q" * 60 + "\n" + "w" * 60 + "\n" + "w" * 60


def test_a_10_mb_line_is_not_held_in_memory(census: Schema) -> None:
    stream = Generated(ROW.encode() + b"\n1, ", b"x", 10 * 1024 * 1024, b"\n" + ROW.encode())
    tracemalloc.start()
    try:
        rows = list(read_csv(stream, census, max_record_bytes=100_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [(r.line, r.error) for r in rows] == [
        (1, None),
        (2, "record longer than 100000 bytes"),
        (3, None),
    ]
    assert rows[1].raw.startswith("1, xxxx") and len(rows[1].raw) <= 203
    assert peak < 2_000_000, peak


def test_malformed_quoting(small: Schema) -> None:
    rows = rows_of(b'1,"a"b,1\n2,ok,1\n3,"never closed,1\n4,x,1\n', small)
    assert summary(rows) == [
        (1, "malformed CSV: ',' expected after '\"'"),
        (2, {"a": "2", "b": "ok", "y": "1"}),
        (3, "malformed CSV: unexpected end of data"),
    ]
    assert rows[2].raw == '3,"never closed,1\n4,x,1'


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, 1000])
def test_any_read_size_gives_the_same_rows(small: Schema, step: int) -> None:
    data = (
        b'\xef\xbb\xbf1,x,1\r\n2,"q, \nr",0\n3,caf\xe9,1\n\n4,'
        + b"y" * 150
        + b',1\n5,"a""b",0\n6,no newline at the end,1'
    )
    expected = rows_of(data, small, max_record_bytes=100)
    assert len(expected) == 6 and expected[3].error == "record longer than 100 bytes"
    assert list(read_csv(Trickle(data, step), small, max_record_bytes=100)) == expected


CSV_PIECES = [b"1", b"x", b",", b", ", b'"', b"\n", b"\r\n", b"\xff", b"\xc3\xa9"]
CSV_ALPHABET = st.sampled_from(CSV_PIECES)


@settings(max_examples=300, deadline=None)
@given(st.lists(CSV_ALPHABET, max_size=300).map(b"".join), st.integers(1, 40))
def test_any_bytes_read_without_crashing(small: Schema, data: bytes, step: int) -> None:
    for read in (read_csv, read_jsonl):
        rows = list(read(io.BytesIO(data), small, max_record_bytes=48))
        assert all((r.fields is None) == (r.error is not None) for r in rows)
        lines = [r.line for r in rows]
        assert lines == sorted(set(lines)) and all(n >= 1 for n in lines)
        assert list(read(Trickle(data, step), small, max_record_bytes=48)) == rows


def test_big_input_crosses_chunk_boundaries(census: Schema) -> None:
    data = (ROW + "\n").encode() * 20_000  # about 2.3 MB: many 64 KiB chunks
    rows = rows_of(data, census)
    assert len(rows) == 20_000 and [r.line for r in rows] == list(range(1, 20_001))
    assert all(r.raw == ROW and r.error is None for r in rows)


def test_s3_streaming_body(census: Schema) -> None:
    data = (ROW + "\n").encode() * 3
    rows = list(read_records(StreamingBody(io.BytesIO(data), len(data)), census, format="csv"))
    assert [r.line for r in rows] == [1, 2, 3] and all(r.fields for r in rows)


# --- JSON Lines ------------------------------------------------------------------------


def jsonl(data: bytes, schema: Schema, **kw: Any) -> list[tuple[int, Any]]:
    return summary(list(read_jsonl(io.BytesIO(data), schema, **kw)))


def test_jsonl_records(small: Schema) -> None:
    data = b'\xef\xbb\xbf{"a": 1, "b": "x"}\r\n\n  \n{"a": "2", "when": "12:30:00", "n": {"k": 1}}'
    assert jsonl(data, small) == [
        (1, {"a": 1, "b": "x"}),
        (4, {"a": "2", "when": "12:30:00", "n": {"k": 1}}),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"[1, 2]", "expected a JSON object, got an array"),
        (b'"text"', "expected a JSON object, got a string"),
        (b"42", "expected a JSON object, got a number"),
        (b"null", "expected a JSON object, got null"),
        (b'{"a": 1,}', "invalid JSON: trailing comma is not allowed (column 8)"),
        (b"{a: 1}", "invalid JSON: "),
        (b'{"a": NaN}', "invalid JSON: NaN and Infinity are not JSON numbers (column 7)"),
        (b'{"a": Infinity}', "invalid JSON: NaN and Infinity are not JSON numbers"),
        (b'{"a": -Infinity}', "invalid JSON: NaN and Infinity are not JSON numbers"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a' (ambiguous)"),
        (b'{"a": {"k": 1, "k": 2}}', "duplicate key 'k' (ambiguous)"),
        (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "values nested deeper than 32 levels"),
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "invalid JSON: depth limit"),
        (b'{"a": ' + b'{"b": ' * 5000 + b"1" + b"}" * 5001, "invalid JSON: depth limit"),
        (b'{"a": "\xff"}', "invalid UTF-8 at byte offset 7 (line 1)"),
    ],
)
def test_jsonl_rejects(small: Schema, line: bytes, reason: str) -> None:
    rows = jsonl(line + b'\n{"a": 5}\n', small, max_record_bytes=1_000_000)
    assert len(rows) == 2
    assert rows[0][0] == 1 and isinstance(rows[0][1], str) and rows[0][1].startswith(reason)
    assert rows[1] == (2, {"a": 5})


@pytest.mark.parametrize("step", [1, 2, 5, 64])
def test_jsonl_any_read_size_gives_the_same_rows(small: Schema, step: int) -> None:
    data = (
        b'\xef\xbb\xbf{"a": 1}\r\n{"a": "\xc3\xa9"}\n{"a": "\xe9"}\n{"b": "'
        + b"x" * 300
        + b'"}\n[]'
    )
    expected = list(read_jsonl(io.BytesIO(data), small, max_record_bytes=100))
    assert [r.line for r in expected] == [1, 2, 3, 4, 5]
    assert [r.error is None for r in expected] == [True, True, False, False, False]
    assert list(read_jsonl(Trickle(data, step), small, max_record_bytes=100)) == expected


def test_jsonl_shallow_nesting_passes_to_the_schema(small: Schema) -> None:
    ((_, fields),) = jsonl(b'{"a": [[1]], "b": "x"}', small)
    assert fields == {"a": [[1]], "b": "x"}
    with pytest.raises(RecordValidationError, match="a: expected a number, got an array"):
        small.validate(fields)


def test_jsonl_over_long_line(small: Schema) -> None:
    data = b'{"a": 1}\n{"b": "' + b"x" * 500 + b'"}\n{"a": 3}\n'
    rows = list(read_jsonl(io.BytesIO(data), small, max_record_bytes=100))
    assert [(r.line, r.error) for r in rows] == [
        (1, None),
        (2, "record longer than 100 bytes"),
        (3, None),
    ]


# --- formats ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.csv", "csv"), ("A.CSV", "csv"), ("x/y.txt", "csv"), ("adult.data", "csv"),
     ("in/batch.jsonl", "jsonl"), ("s3/key.ndjson", "jsonl"), ("r.json", "jsonl")],
)  # fmt: skip
def test_detect_format(name: str, fmt: str) -> None:
    assert detect_format(name) == fmt


@pytest.mark.parametrize("name", ["data.parquet", "noext", "a.csv.gz"])
def test_detect_format_refuses_unknown_extensions(name: str) -> None:
    with pytest.raises(InputError, match=re.escape(f"cannot tell the record format of {name!r}")):
        detect_format(name)


def test_read_records_dispatches(small: Schema) -> None:
    (row,) = read_records(io.BytesIO(b'{"a": 1}'), small, format="jsonl")
    assert row.fields == {"a": 1}
    (row,) = read_records(io.BytesIO(b"a,b,y\n1,2,3"), small, format="csv", header=True)
    assert row.fields == {"a": "1", "b": "2", "y": "3"}
    with pytest.raises(InputError):
        read_records(io.BytesIO(b""), small, format="xml")  # type: ignore[arg-type]


# --- the demo sample and the real data set ---------------------------------------------

SAMPLE_REJECTS = {
    12: "native-country: unknown category 'Mars' (expected one of 'United-States', "
    "'Cambodia', 'England', ... 41 in all)",
    40: "age: not a number: 'thirty-two'",
    77: "hours-per-week: not a finite number: 'NaN'",
    120: "expected 15 fields (14 without the target 'income'), got 9",
    166: "education: missing required value",
    213: "age: 200 is above the maximum 150",
    260: "capital-loss: -5 is below the minimum 0",
    301: "fnlwgt: not a finite number: 'Infinity'",
}


def validate_all(schema: Schema, rows: Iterator[SourceRow]) -> tuple[int, dict[int, str]]:
    ok, rejected = 0, {}
    for row in rows:
        if row.fields is None:
            rejected[row.line] = str(row.error)
            continue
        try:
            schema.validate(row.fields, line=row.line)
            ok += 1
        except RecordValidationError as exc:
            rejected[row.line] = "; ".join(exc.reasons)
    return ok, rejected


def test_demo_sample_rejects_exactly_the_documented_lines(census: Schema) -> None:
    with SAMPLE.open("rb") as f:
        ok, rejected = validate_all(census, read_csv(f, census))
    assert rejected == SAMPLE_REJECTS
    assert ok == 335 - len(SAMPLE_REJECTS)


def test_demo_readme_lists_the_same_lines() -> None:
    readme = (REPO / "examples" / "README.md").read_text()
    table = dict(re.findall(r"^\| (\d+) \|.*\| `(.+)` \|$", readme, flags=re.MULTILINE))
    assert {int(k): v for k, v in table.items()} == SAMPLE_REJECTS
    assert "CC BY 4.0" in readme and "10.24432/C5XW20" in readme


@pytest.mark.skipif(not ADULT_DATA.is_file(), reason="adult.data is not next to this checkout")
def test_every_row_of_adult_data_reads_and_validates(census: Schema) -> None:
    with ADULT_DATA.open("rb") as f:
        ok, rejected = validate_all(census, read_csv(f, census))
    assert rejected == {}
    assert ok == 32_561

"""The planner's chunks (amlproxy/chunks/plan.py) on generated input: they concatenate to
the object, every cut is a record boundary (quoted newlines, CRLF, a BOM, no final line
break), line numbers are those of the whole object, planning is deterministic, and reading
the chunks one by one (first line, header) gives exactly the rows of reading the whole."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amlproxy.chunks.plan import Plan, plan_stream
from amlproxy.core.outcome import SourceRow
from amlproxy.core.readers import read_records
from amlproxy.errors import InputError
from tests.unit.test_reader_properties import SMALL
from tests.unit.test_readers import Trickle

PLAIN = st.text(alphabet="abxy01 ", max_size=6)
QUOTED = st.text(alphabet='ab,"\n\r ', max_size=8).map(lambda t: '"' + t.replace('"', '""') + '"')
FIELDS = st.lists(st.one_of(PLAIN, QUOTED), min_size=1, max_size=4)


def _records(rows: list[list[str]], crlf: bool) -> tuple[bytes, list[int]]:
    """The CSV bytes of ``rows`` and the offsets where each record ends."""
    out, ends = b"", []
    for row in rows:
        out += ",".join(row).encode() + (b"\r\n" if crlf else b"\n")
        ends.append(len(out))
    return out, ends


def _check_spans(data: bytes, plan: Plan) -> None:
    assert plan.size == len(data)
    assert b"".join(data[s.start:s.end] for s in plan.spans) == data
    assert [s.index for s in plan.spans] == list(range(len(plan.spans)))
    for span in plan.spans:
        assert span.start < span.end or len(data) == 0
        assert span.first_line == data[:span.start].count(b"\n") + 1


@settings(max_examples=150, deadline=None)
@given(st.lists(FIELDS, min_size=1, max_size=30), st.booleans(), st.booleans(),
       st.booleans(), st.integers(1, 60), st.sampled_from([1, 2, 3, 7, 64, 65536]))
def test_cuts_are_record_boundaries(rows: list[list[str]], crlf: bool, bom: bool,
                                    last_break: bool, chunk_bytes: int, block: int) -> None:
    data, ends = _records(rows, crlf)
    if not last_break:
        data = data.rstrip(b"\r\n")
        ends[-1] = len(data)
    if bom:
        data = b"\xef\xbb\xbf" + data
        ends = [e + 3 for e in ends]
    plan = plan_stream(Trickle(data, block), format="csv", chunk_bytes=chunk_bytes,
                       block_size=block)
    _check_spans(data, plan)
    boundaries = set(ends) | {len(data)}
    assert all(span.end in boundaries for span in plan.spans)
    assert all(span.end - span.start >= chunk_bytes for span in plan.spans[:-1])
    again = plan_stream(io.BytesIO(data), format="csv", chunk_bytes=chunk_bytes)
    assert again.spans == plan.spans  # deterministic, whatever the read sizes


PIECES = [b"1", b"x", b"a", b",", b", ", b'"', b'""', b"\n", b"\r\n", b"\r", b" ",
          b"1,x,0\n", b"2, y, 1\r\n", b'"a\nb",1,0\n', b"a,b,y\n", b"\n\n", b"\xc3\xa9",
          b"\xff", b"zzzzzzzzzzzz", b"\xef\xbb\xbf"]


def _read(stream: io.BytesIO, header: bool, first_line: int = 1,
          header_line: str | None = None, limit: int = 1 << 20,
          offset: int = 0) -> list[SourceRow] | str:
    try:
        return list(read_records(stream, SMALL, format="csv", header=header,
                                 first_line=first_line, header_line=header_line,
                                 max_record_bytes=limit, first_offset=offset))
    except InputError as exc:
        return f"InputError: {exc}"


def _chunks_agree(data: bytes, header: bool, chunk_bytes: int, block: int = 65536,
                  limit: int = 1 << 20) -> None:
    """Reading the planned chunks one by one gives the rows of reading the whole."""
    plan = plan_stream(Trickle(data, block), format="csv", chunk_bytes=chunk_bytes,
                       header=header, block_size=block, max_record_bytes=limit)
    _check_spans(data, plan)
    whole = _read(io.BytesIO(data), header, limit=limit)
    parts: list[SourceRow] = []
    for span in plan.spans:
        got = _read(io.BytesIO(data[span.start:span.end]), header, span.first_line,
                    plan.header if span.index else None, limit=limit, offset=span.start)
        if isinstance(got, str):  # a bad header: every chunk says so, as the whole does
            assert got == whole
            return
        parts += got
    assert parts == whole, plan.spans


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=80).map(b"".join), st.booleans(),
       st.booleans(), st.integers(1, 40), st.sampled_from([1, 5, 64, 65536]),
       st.sampled_from([6, 17, 1 << 20]))
def test_the_chunks_read_one_by_one_give_the_rows_of_the_whole(
        data: bytes, bom: bool, header: bool, chunk_bytes: int, block: int,
        limit: int) -> None:
    if bom:
        data = b"\xef\xbb\xbf" + data
    _chunks_agree(data, header, chunk_bytes, block, limit)


# What the csv module and the line reader make of broken input, which the planner must
# follow exactly: after a bare CR outside quotes, or after a closing quote, anything but a
# separator or a line break is an error that drops the rest of the line (its quotes
# included); a line that is not UTF-8, or too long, is dropped whole; a quoted record
# longer than the limit is dropped at the end of the line that makes it too long. The
# next record starts on the next line in every case.
BROKEN = [
    b'1,a\r,"x\n2,y",0\n3,z,1\n',          # a bare CR, then a quote on the same line
    b'\r"\n1,x,0\n"\n2,y,1\n',              # a bare CR at the start of a record
    b'1,"x"y,"a\nb",0\n2,c,1\n',            # text after a closing quote
    b'1,"x" ,"a\nb",0\n2,c,1\n',            # a blank after a closing quote (strict)
    b'1,"x"\r,"\n2,c,1\n',                   # a CR after a closing quote, then more
    b'1,x\r\r\n2,"y\n",1\n3,z,0\n',          # CR CR LF is a line break
    b'1,\xff,"a\n2,b,1\n3,"c\nd",0\n',        # a quote on a line that is not UTF-8
    b'1,"a\n\xff\n2,b,1\n3,"c\nd",0\n',      # a bad line inside a quoted field
]


@pytest.mark.parametrize("data", BROKEN)
@pytest.mark.parametrize("header", [False, True])
def test_broken_lines_end_their_record_for_the_planner_as_for_the_reader(
        data: bytes, header: bool) -> None:
    for chunk_bytes in range(1, len(data) + 2):
        for block in (1, 3, 65536):
            _chunks_agree(data, header, chunk_bytes, block)


def test_a_quoted_record_longer_than_the_limit_ends_where_the_reader_drops_it() -> None:
    data = b'1,"aaaa\nbbbb\ncc\n2,x,1\n3,"y\nz",0\n4,w,1\n'
    for limit in (8, 12, 15, 40):
        for chunk_bytes in range(1, len(data) + 2):
            _chunks_agree(data, False, chunk_bytes, 5, limit)


def test_an_over_long_line_is_dropped_whole_quotes_and_all() -> None:
    data = b'1,x,0\n2,' + b'z' * 30 + b',"q\n3,y,1\n4,"a\nb",0\n5,v,1\n'
    for chunk_bytes in range(1, len(data) + 2, 3):
        for block in (4, 65536):
            _chunks_agree(data, False, chunk_bytes, block, limit=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b'{"a": 1}', b"\n", b"\r\n", b'"x\n', b"{", b" "]),
                max_size=60).map(b"".join), st.integers(1, 30))
def test_json_lines_cut_at_every_line_break(data: bytes, chunk_bytes: int) -> None:
    plan = plan_stream(io.BytesIO(data), format="jsonl", chunk_bytes=chunk_bytes)
    _check_spans(data, plan)
    assert all(data[s.end - 1:s.end] == b"\n" for s in plan.spans[:-1])
    whole = list(read_records(io.BytesIO(data), SMALL, format="jsonl"))
    parts = [row for s in plan.spans for row in read_records(
        io.BytesIO(data[s.start:s.end]), SMALL, format="jsonl", first_line=s.first_line)]
    assert parts == whole


def test_a_quoted_newline_is_not_a_boundary_and_the_header_is_carried() -> None:
    data = b'a,b,y\n1,"x\ny",0\n2,z,1\n3,"w\r\nv",0\r\n'
    plan = plan_stream(io.BytesIO(data), format="csv", chunk_bytes=1, header=True)
    assert plan.header == "a,b,y"
    assert [(s.start, s.end, s.first_line) for s in plan.spans] == [
        (0, 16, 1), (16, 22, 4), (22, 34, 5)]
    rows = list(read_records(io.BytesIO(data[22:]), SMALL, format="csv", first_line=5,
                             header_line=plan.header))
    assert [(r.line, r.fields) for r in rows] == [(5, {"a": "3", "b": "w\r\nv", "y": "0"})]


def test_an_unclosed_quote_keeps_the_rest_in_one_chunk() -> None:
    data = b'1,x,0\n2,"open,1\n3,y,0\n4,z,1\n'
    plan = plan_stream(io.BytesIO(data), format="csv", chunk_bytes=1)
    assert [(s.start, s.end) for s in plan.spans] == [(0, 6), (6, len(data))]


def test_an_empty_object_is_one_empty_chunk() -> None:
    plan = plan_stream(io.BytesIO(b""), format="csv", chunk_bytes=10)
    assert [(s.start, s.end, s.first_line) for s in plan.spans] == [(0, 0, 1)]
    with pytest.raises(ValueError):
        plan_stream(io.BytesIO(b""), format="csv", chunk_bytes=0)

"""SageMaker request encoding, payload packing and response parsing."""

from __future__ import annotations

import csv
import io
import itertools

import orjson
import pytest

from amlproxy.backends.sagemaker_codec import CSV, JSON, CsvEncoder, JsonEncoder, pack
from amlproxy.backends.sagemaker_response import JsonPath, ResponseParser
from amlproxy.errors import ModelResponseError

FEATURES = ("age", "workclass", "married", "note")


# ----------------------------------------------------------------------------- requests


def test_csv_lines_follow_feature_order_and_quote_when_needed() -> None:
    enc = CsvEncoder(FEATURES)
    record = {"note": 'said "hi", left', "age": 39.0, "workclass": "State-gov",
              "married": True, "income": ">50K"}
    line = enc.encode(record)
    assert line == b'39,State-gov,1,"said ""hi"", left"'
    assert next(csv.reader(io.StringIO(line.decode()))) == ["39", "State-gov", "1",
                                                            'said "hi", left']


def test_csv_missing_values_are_empty_cells_and_floats_keep_their_digits() -> None:
    enc = CsvEncoder(FEATURES)
    assert enc.encode({"age": 0.1, "workclass": None, "married": False}) == b"0.1,,0,"
    assert enc.encode({"age": -3.0, "workclass": "a\nb"}) == b'-3,"a\nb",,'
    assert enc.encode({"age": 1e20}) == b"1e+20,,,"


def test_csv_body_is_one_line_per_record() -> None:
    enc = CsvEncoder(("a", "b"))
    lines = [enc.encode({"a": float(i), "b": "x"}) for i in range(3)]
    body = enc.body(lines)
    assert body == b"0,x\n1,x\n2,x\n"
    assert enc.body_size(sum(map(len, lines)), 3) == len(body)


def test_json_bodies_single_object_or_instances() -> None:
    enc = JsonEncoder(("a", "b"))
    one = enc.encode({"b": None, "a": 1.5, "target": "x"})
    assert orjson.loads(one) == {"a": 1.5, "b": None}
    two = [one, enc.encode({"a": 2.0, "b": "y"})]
    body = enc.body(two)
    assert orjson.loads(body) == {"instances": [{"a": 1.5, "b": None}, {"a": 2.0, "b": "y"}]}
    assert enc.body_size(sum(map(len, two)), 2) == len(body)
    assert orjson.loads(enc.body([one])) == {"instances": [{"a": 1.5, "b": None}]}
    single = JsonEncoder(("a", "b"), single_object=True)
    assert single.body([one]) == one
    assert single.body_size(len(one), 1) == len(one)


@pytest.mark.parametrize("encoder", [CsvEncoder(("a",)), JsonEncoder(("a",))])
def test_pack_keeps_order_and_every_body_under_the_limit(encoder: CsvEncoder | JsonEncoder
                                                         ) -> None:
    sizes = [10, 30, 5, 40, 40, 1, 1, 1, 60, 7]
    limit = 64
    runs = pack(sizes, encoder, limit)
    assert runs[0][0] == 0 and runs[-1][1] == len(sizes)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(runs))
    for start, stop in runs:
        body = encoder.body_size(sum(sizes[start:stop]), stop - start)
        assert body <= limit or stop - start == 1
    # greedy: no run could have taken the next record too
    for (start, stop), _ in itertools.pairwise(runs):
        assert encoder.body_size(sum(sizes[start : stop + 1]), stop + 1 - start) > limit
    assert pack([], encoder, limit) == []
    assert pack([100], encoder, limit) == [(0, 1)]


# ---------------------------------------------------------------------------- responses

BINARY = ResponseParser(labels=("<=50K", ">50K"))


def test_csv_probabilities_become_labels_and_both_scores() -> None:
    got = BINARY.parse(b"0.25\n0.75\n0.5\n", "text/csv; charset=utf-8", 3)
    assert got == [
        ("<=50K", {"<=50K": 0.75, ">50K": 0.25}, None),
        (">50K", {"<=50K": 0.25, ">50K": 0.75}, None),
        (">50K", {"<=50K": 0.5, ">50K": 0.5}, None),
    ]
    strict = ResponseParser(labels=("n", "y"), threshold=0.8)
    assert strict.parse(b"0.75", CSV, 1)[0][0] == "n"


def test_csv_batch_on_one_line() -> None:
    got = BINARY.parse(b"0.25,0.75,0.5", CSV, 3)
    assert [label for label, _, _ in got] == ["<=50K", ">50K", ">50K"]
    assert BINARY.parse(b"0.25,0.75", CSV, 1)[0][1] == {"<=50K": 0.25, ">50K": 0.75}


def test_csv_several_columns_are_class_scores_and_labels_pass_through() -> None:
    three = ResponseParser(labels=("a", "b", "c"))
    assert three.parse(b"0.1,0.7,0.2\n", CSV, 1) == [("b", {"a": 0.1, "b": 0.7, "c": 0.2}, None)]
    assert BINARY.parse(b">50K\n<=50K\n", CSV, 2) == [(">50K", {}, None), ("<=50K", {}, None)]
    assert BINARY.parse(b'"a,b"\n', CSV, 1) == [("a,b", {}, None)]


def test_regression_without_labels() -> None:
    regression = ResponseParser(labels=None)
    assert regression.parse(b"12.5\n-3\n", CSV, 2) == [(None, {}, 12.5), (None, {}, -3.0)]
    assert regression.parse(b'{"predictions": [{"score": 4.5}]}', JSON, 1) == [(None, {}, 4.5)]


def test_json_predictions_in_their_common_shapes() -> None:
    body = orjson.dumps({"predictions": [
        0.9,
        ">50K",
        [0.6, 0.4],
        {"score": 0.2, "predicted_label": 1},
        {"label": "<=50K", "score": 0.3, "scores": [0.7, 0.3]},
        {"probabilities": {"<=50K": 0.1, ">50K": 0.9}},
        {"predicted_label": 0.0},
    ]})
    got = BINARY.parse(body, JSON, 7)
    assert got[0] == (">50K", {"<=50K": pytest.approx(0.1), ">50K": 0.9}, None)
    assert got[1] == (">50K", {}, None)
    assert got[2] == ("<=50K", {"<=50K": 0.6, ">50K": 0.4}, None)
    assert got[3] == (">50K", {"<=50K": 0.8, ">50K": 0.2}, None)  # the label given wins
    assert got[4] == ("<=50K", {"<=50K": 0.7, ">50K": 0.3}, None)
    assert got[5] == (">50K", {"<=50K": 0.1, ">50K": 0.9}, None)
    assert got[6] == ("<=50K", {}, None)


def test_json_bare_list_and_single_object() -> None:
    assert BINARY.parse(b"[0.1, 0.9]", JSON, 2)[1][0] == ">50K"
    assert BINARY.parse(b'{"label": ">50K", "score": 0.6}', JSON, 1)[0][0] == ">50K"


def test_json_path_extracts_predictions() -> None:
    parser = ResponseParser(labels=("0", "1"), json_path="$.output.results[*].p")
    body = orjson.dumps({"output": {"results": [{"p": 0.1}, {"p": 0.8}]}})
    assert [r[0] for r in parser.parse(body, JSON, 2)] == ["0", "1"]
    assert JsonPath("predictions").find({"predictions": [1, 2]}) == [1, 2]
    assert JsonPath("a[1].b").find({"a": [{"b": 1}, {"b": 2}]}) == [2]
    assert JsonPath("[*][0]").find([[1, 2], [3, 4]]) == [1, 3]
    with pytest.raises(ModelResponseError):
        JsonPath("a.b").find({"a": {}})
    with pytest.raises(ModelResponseError):
        JsonPath("a[*]").find({"a": 3})
    with pytest.raises(ValueError):
        JsonPath("a[x]")


@pytest.mark.parametrize(
    ("body", "content_type", "count"),
    [
        (b"0.5\n", CSV, 2),  # too few
        (b"0.1\n0.2\n0.3\n", CSV, 2),  # too many
        (b"{not json", JSON, 1),
        (b'{"predictions": [0.5]}', JSON, 2),
        (b'{"something": "else"}', JSON, 2),
        (b'{"predictions": [1.5]}', JSON, 1),  # not a probability
        (b'{"predictions": [{"foo": 1}]}', JSON, 1),
        (b'{"predictions": [[0.1, 0.2, 0.7]]}', JSON, 1),  # 3 scores, 2 labels
        (b'{"predictions": [null]}', JSON, 1),
        (b"0.1,abc\n", CSV, 1),
        (b"\xff\xfe", CSV, 1),
    ],
)
def test_bad_bodies_are_model_response_errors(body: bytes, content_type: str, count: int
                                             ) -> None:
    with pytest.raises(ModelResponseError):
        BINARY.parse(body, content_type, count)


def test_labels_need_two_classes() -> None:
    with pytest.raises(ValueError):
        ResponseParser(labels=("only",))

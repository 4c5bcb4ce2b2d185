"""When every record is rejected, one line names the likely cause and the flag that fixes
it; ``validate`` says how many more rejects there are after the first 20."""

from __future__ import annotations

import json
from pathlib import Path

from amlproxy.cli import main

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "census-income-sample.csv"
COLUMNS = ("age,workclass,fnlwgt,education,education-num,marital-status,occupation,"
           "relationship,race,sex,capital-gain,capital-loss,hours-per-week,native-country")


def score(tmp_path: Path, path: Path, *extra: str) -> list[str]:
    return ["score", str(path), "--out", str(tmp_path / "p.jsonl"),
            "--rejects", str(tmp_path / "r.jsonl"), *extra]


def hints(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("hint:")]


def test_records_of_another_schema(tmp_path, capsys):
    other = tmp_path / "iris.csv"
    other.write_text("5.1,3.5,1.4,0.2,Iris-setosa\n4.9,3.0,1.4,0.2,Iris-setosa\n")
    assert main(score(tmp_path, other)) == 0
    (line,) = hints(capsys.readouterr().err)
    assert "every record was rejected" in line and "--schema" in line
    assert "expected 15 fields (14 without the target 'income'), got 5" in line


def test_a_json_array_file(tmp_path, capsys):
    rows = [dict(zip(COLUMNS.split(","), r.split(", "), strict=False))
            for r in SAMPLE.read_text().splitlines()[:3]]
    array = tmp_path / "records.jsonl"
    array.write_text(json.dumps(rows, indent=2))
    assert main(score(tmp_path, array)) == 0
    (line,) = hints(capsys.readouterr().err)
    assert "JSON array" in line and "jq -c '.[]'" in line


def test_a_headered_csv_read_without_header(tmp_path, capsys):
    columns = COLUMNS.split(",")
    shuffled = tmp_path / "export.csv"
    rows = [dict(zip(columns, r.split(", "), strict=False))
            for r in SAMPLE.read_text().splitlines()[:5]]
    order = list(reversed(columns))
    shuffled.write_text(",".join(order) + "\n" + "".join(
        ",".join(row[c] for c in order) + "\n" for row in rows))
    assert main(score(tmp_path, shuffled)) == 0
    (line,) = hints(capsys.readouterr().err)
    assert "every record was rejected" in line and "looks like a header" in line
    assert "pass --header" in line
    assert main([*score(tmp_path, shuffled, "--header"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] == 5


def test_no_hint_when_records_pass(tmp_path, capsys):
    assert main(score(tmp_path, SAMPLE)) == 0
    assert hints(capsys.readouterr().err) == []


def test_validate_says_how_many_more_after_20(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n" * 25)
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert sum(": line " in line for line in err) == 20
    assert f"{bad}: ... and 5 more rejected record(s) (--rejects FILE writes them all)" in err

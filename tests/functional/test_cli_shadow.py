"""``amlproxy score --backend shadow`` against the emulator: two identical models agree
(1.0) or the run refuses (exit 2, one line), never a silent 0.0."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from amlproxy.cli import main

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "census-income-sample.csv"
SCORED = 327  # the sample's rows that pass validation


@pytest.fixture
def no_target_categories(tmp_path: Path) -> str:
    """The census schema without its target's categories: the labels must come from
    elsewhere (the model, the answers, or --labels)."""
    doc = json.loads((REPO / "schemas" / "census-income.schema").read_text())
    for attribute in doc["attributes"]:
        if attribute["attributeName"] == doc["targetAttributeName"]:
            attribute.pop("categories")
    path = tmp_path / "census-no-target-categories.schema"
    path.write_text(json.dumps(doc))
    return str(path)


def shadow(emu: Any, tmp_path: Path, primary: str, other: str, *extra: str) -> list[str]:
    return ["score", str(SAMPLE), "--backend", "shadow", "--shadow-primary", primary,
            "--shadow", other, "--model-id", emu.model_id, "--predict-endpoint", emu.url,
            "--endpoint", emu.endpoint_name, "--endpoint-url", emu.url,
            "--out", str(tmp_path / "p.jsonl"), "--rejects", str(tmp_path / "r.jsonl"), *extra]


@pytest.fixture(autouse=True)
def _no_labels_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMLPROXY_LABELS", raising=False)


@pytest.mark.parametrize("primary,other", [
    ("aml", "sagemaker"), ("sagemaker", "aml"), ("aml", "local"), ("sagemaker", "local"),
    ("aml", "aml"), ("sagemaker", "sagemaker"),
])
def test_identical_models_agree_fully(emu, tmp_path, capsys, primary, other):
    assert main(shadow(emu, tmp_path, primary, other, "--json")) == 0
    comparison = json.loads(capsys.readouterr().out)["backend"]["shadow_comparison"]
    assert comparison["compared"] == SCORED and comparison["agreement_rate"] == 1.0
    assert comparison["label_mismatches"] == 0
    assert comparison["p99_abs_score_diff"] < 1e-9


def test_the_summary_shows_the_comparison_and_shadow_out_keeps_the_pairs(emu, tmp_path,
                                                                         capsys):
    pairs = tmp_path / "pairs.jsonl"
    assert main(shadow(emu, tmp_path, "aml", "sagemaker", "--shadow-out", str(pairs))) == 0
    out = capsys.readouterr().out
    assert "shadow: aml:census-income compared with sagemaker:census-income on 327" in out
    assert "agreement 1.0000 (327 of 327" in out and "label mismatches 0" in out
    assert "score difference: mean 0, p99 0" in out and f"-> shadow:{pairs}" in out
    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    assert len(rows) == SCORED and all(r["agree"] for r in rows)
    assert {r["primary_label"] for r in rows} == {"<=50K", ">50K"}
    assert all(r["primary_scores"] == r["shadow_scores"] for r in rows)


def test_amazon_ml_names_its_classes_from_get_ml_model(emu, tmp_path, capsys,
                                                       no_target_categories):
    args = shadow(emu, tmp_path, "aml", "sagemaker", "--schema", no_target_categories,
                  "--json")
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"]["shadow_comparison"]["agreement_rate"] == 1.0


def test_self_describing_answers_need_no_labels(emu, tmp_path, capsys, no_target_categories):
    args = shadow(emu, tmp_path, "sagemaker", "local", "--schema", no_target_categories,
                  "--content-type", "application/json", "--json")
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["backend"]["shadow_comparison"][
        "agreement_rate"] == 1.0


def test_without_labels_the_comparison_refuses_in_one_line(emu, tmp_path, capsys,
                                                           no_target_categories):
    args = shadow(emu, tmp_path, "sagemaker", "local", "--schema", no_target_categories)
    assert main(args) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("amlproxy: error: cannot compare sagemaker with local")
    assert "--labels" in line and "agreement" not in captured.out
    assert not (tmp_path / "p.jsonl").exists()  # no output from a refused comparison
    # Naming the classes fixes it.
    assert main([*args, "--labels", "<=50K,>50K", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["backend"]["shadow_comparison"][
        "agreement_rate"] == 1.0


def test_shadow_out_needs_the_shadow_backend(tmp_path, capsys):
    assert main(["score", str(SAMPLE), "--shadow-out", str(tmp_path / "x.jsonl"),
                 "--out", str(tmp_path / "p.jsonl"), "--rejects", str(tmp_path / "r.jsonl"),
                 ]) == 2
    assert "--shadow-out needs --backend shadow" in capsys.readouterr().err

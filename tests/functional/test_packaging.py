"""The wheel carries everything needed at run time: schemas and the bundled model included.

Builds the wheel, installs it into a fresh venv (no source tree on sys.path), and runs the
CLI from another directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROW = ("39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, "
       "White, Male, 2174, 0, 40, United-States\n")

pytestmark = pytest.mark.slow


def _build(kind: str, tmp_path_factory) -> Path:
    """``python -m build --<kind>`` from a copy, so that no artefact lands in the work tree."""
    out = tmp_path_factory.mktemp(kind)
    src = tmp_path_factory.mktemp(f"src-{kind}") / "amlproxy"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv*", ".git", "build", "dist", "__pycache__", ".*_cache", ".hypothesis"))
    subprocess.run([sys.executable, "-m", "build", f"--{kind}", "--outdir", str(out), str(src)],
                   check=True, capture_output=True, timeout=600)
    (built,) = out.glob("amlproxy-*.whl" if kind == "wheel" else "amlproxy-*.tar.gz")
    return built


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return _build("wheel", tmp_path_factory)


def test_wheel_contains_the_runtime_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "amlproxy/_schemas/census-income.schema" in names
    assert "amlproxy/localmodel/census-income.json" in names
    assert "amlproxy/py.typed" in names
    assert "amlproxy/local/template.yaml" in names  # `amlproxy local up` builds from it
    assert not any(n.startswith("tests/") for n in names)


def test_installed_wheel_runs_from_another_directory(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", str(wheel)], check=True,
                   timeout=900)
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "rows.csv").write_text(ROW)
    cli = env_dir / "bin" / "amlproxy"
    r = subprocess.run([str(cli), "score", "rows.csv", "--out", "p.jsonl", "-q"], cwd=work,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (work / "p.jsonl").read_text().count("\n") == 1
    r = subprocess.run([str(cli), "schema", "list"], cwd=work, capture_output=True, text=True)
    assert "census-income" in r.stdout
    # The installed package is the one that ran, not the source tree.
    r = subprocess.run([str(py), "-c", "import amlproxy; print(amlproxy.__file__)"], cwd=work,
                       capture_output=True, text=True)
    assert str(env_dir) in r.stdout


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    return _build("sdist", tmp_path_factory)


def test_the_sdist_is_the_whole_project_and_its_tests_run_from_it(sdist, tmp_path):
    import tarfile

    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path, filter="data")
    (root,) = tmp_path.glob("amlproxy-*")
    for needed in ("LICENSE", "CHANGELOG.md", "README.md", "Makefile", "pyproject.toml",
                   "sam/template.yaml", "docs/deploy.md", "schemas/census-income.schema",
                   "examples/census-income-sample.csv", "tests/template/test_sam_template.py"):
        assert (root / needed).is_file(), needed
    assert "Apache License" in (root / "LICENSE").read_text()
    # The template tests (they read sam/ and docs/) pass from the unpacked sdist.
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-m", "not slow", "tests/template/test_sam_template.py",
                        "tests/unit/test_readme.py"],
                       cwd=root, env=dict(os.environ, PYTHONPATH=str(root)),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:]


def test_one_version_source():
    import amlproxy

    text = (REPO / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and "\nversion =" not in text
    from importlib.metadata import version

    assert version("amlproxy") == amlproxy.__version__

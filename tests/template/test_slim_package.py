"""sam/slim_package.sh: what the Lambda package leaves out, and that it still imports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import annotated_types
import pytest
import typing_extensions

ROOT = Path(__file__).resolve().parents[2]


def test_slimmed_package_imports_sourceless_dependencies_and_keeps_amlproxy_sources(
    tmp_path: Path,
) -> None:
    package = tmp_path / "function"
    shutil.copytree(ROOT / "amlproxy", package / "amlproxy",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "schemas", package / "amlproxy" / "_schemas")
    shutil.copytree(Path(annotated_types.__file__).parent, package / "annotated_types",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(typing_extensions.__file__, package / "typing_extensions.py")
    (package / "pydantic" / "v1").mkdir(parents=True)
    (package / "pydantic" / "__init__.py").write_text("")
    (package / "pydantic" / "v1" / "__init__.py").write_text("raise ImportError\n")
    (package / "wrapt-stubs").mkdir()
    (package / "wrapt-stubs" / "__init__.pyi").write_text("")
    (package / "bin").mkdir()

    subprocess.run([str(ROOT / "sam" / "slim_package.sh"), str(package)], check=True,
                   env={**os.environ, "PYTHON": sys.executable}, timeout=300)

    for gone in ("amlproxy/emulator", "amlproxy/local", "pydantic/v1", "wrapt-stubs",
                 "bin"):
        assert not (package / gone).exists(), gone
    assert not list(package.glob("annotated_types/**/*.py"))  # sourceless
    assert not (package / "typing_extensions.py").exists()
    assert (package / "typing_extensions.pyc").exists()
    assert (package / "amlproxy" / "core" / "schema.py").exists()  # sources kept
    assert list((package / "amlproxy" / "core" / "__pycache__").glob("schema.cpython-*.pyc"))

    shutil.rmtree(package / "pydantic")  # a stand-in: the real one comes from the venv
    probe = ("import annotated_types, typing_extensions, amlproxy.core.schema as s;"
             "s.load_schema('census-income');"
             "print(annotated_types.__file__, typing_extensions.__file__, s.__file__)")
    answer = subprocess.run([sys.executable, "-P", "-c", probe], check=True, text=True,
                            capture_output=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(package),
                                 "PYTHONDONTWRITEBYTECODE": "1"})
    files = answer.stdout.split()
    assert files[0].startswith(str(package)) and files[0].endswith(".pyc")
    assert files[1] == str(package / "typing_extensions.pyc")
    assert files[2] == str(package / "amlproxy" / "core" / "schema.py")


@pytest.mark.slow
def test_stage_function_prints_one_line_when_it_succeeds(tmp_path: Path) -> None:
    """The real staging (arm64 wheels from PyPI): quiet, no pip resolver ERROR."""
    if shutil.which("python3.11") is None and sys.version_info[:2] != (3, 11):
        pytest.skip("stage_function.sh needs CPython 3.11")
    out = tmp_path / "function"
    env = {**os.environ, "AMLPROXY_STAGE_DIR": str(out)}
    if sys.version_info[:2] == (3, 11):
        env["PYTHON"] = sys.executable
    r = subprocess.run([str(ROOT / "sam" / "stage_function.sh")], env=env, text=True,
                       capture_output=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    (line,) = r.stderr.splitlines()
    assert line.startswith("staged ") and line.endswith(str(out))
    assert (out / "amlproxy" / "__init__.py").exists()

"""Runs the template tools that live in their own virtualenv (.venv-tools).

aws-sam-translator, cfn-lint, checkov and parliament are installed by
``sam/tools/install.sh`` into ``.venv-tools`` (or ``$AMLPROXY_TOOLS_VENV``), away from the
project's venv: checkov alone brings ~100 packages and its own boto3 pins. Each tool runs as
a subprocess of that venv's interpreter; nothing here imports them.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SAM_DIR = REPO_ROOT / "sam"
TEMPLATE_PATH = SAM_DIR / "template.yaml"
INSTALL_SCRIPT = SAM_DIR / "tools" / "install.sh"


class ToolsUnavailable(RuntimeError):
    """The tools venv could not be installed (no PyPI, no python3 venv...)."""


@dataclass(frozen=True)
class SamTools:
    """Paths into an installed tools venv, and one method per tool."""

    venv: Path

    def _run(self, args: list[str], *, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            # checkov: never phone home (guidelines, platform mappings, version check).
            "BC_SKIP_MAPPING": "TRUE",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        return subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO_ROOT,
            check=False,
        )

    def transform(self, template: Path, output: Path) -> dict[str, Any]:
        """The SAM template transformed to CloudFormation by aws-sam-translator, offline."""
        script = SAM_DIR / "tools" / "transform_template.py"
        done = self._run([str(self.venv / "bin" / "python"), str(script), str(template),
                          "-o", str(output)])
        if done.returncode != 0:
            raise AssertionError(f"transform failed:\n{done.stdout}\n{done.stderr}")
        transformed: dict[str, Any] = json.loads(output.read_text("utf-8"))
        return transformed

    def cfn_lint(self, *templates: Path) -> tuple[int, str]:
        """(exit code, findings) of cfn-lint on the templates, informational checks included."""
        done = self._run([str(self.venv / "bin" / "cfn-lint"), "--format", "parseable",
                          "--include-checks", "I", "--", *map(str, templates)])
        return done.returncode, done.stdout + done.stderr

    def checkov(self, directory: Path, checks: list[str]) -> dict[str, Any]:
        """checkov's JSON report for the CloudFormation files of ``directory``."""
        done = self._run([str(self.venv / "bin" / "checkov"), "--skip-download",
                          "--framework", "cloudformation", "--check", ",".join(checks),
                          "--output", "json", "--directory", str(directory)])
        if done.returncode not in (0, 1):  # 1 = some check failed; anything else is a crash
            raise AssertionError(f"checkov crashed ({done.returncode}):\n{done.stderr}")
        report = json.loads(done.stdout)
        reports: list[dict[str, Any]] = report if isinstance(report, list) else [report]
        merged: dict[str, Any] = {"passed": [], "failed": [], "skipped": [], "parsing_errors": []}
        for part in reports:
            if "results" not in part:  # an empty summary when nothing was scanned
                continue
            results = part["results"]
            merged["passed"] += results.get("passed_checks", [])
            merged["failed"] += results.get("failed_checks", [])
            merged["skipped"] += results.get("skipped_checks", [])
            merged["parsing_errors"] += results.get("parsing_errors", [])
        return merged

    def parliament(self, policies: dict[str, Any], scratch: Path) -> dict[str, list[Any]]:
        """Every parliament finding per named policy document."""
        source = scratch / "policies.json"
        source.write_text(json.dumps(policies), encoding="utf-8")
        findings: dict[str, list[Any]] = self._lint_policies([str(source)])
        return findings

    def action_resource_types(self, actions: list[str]) -> dict[str, list[str]]:
        """Resource types of IAM actions per parliament's copy of the IAM reference."""
        types: dict[str, list[str]] = self._lint_policies(["--resource-types", *actions])
        return types

    def _lint_policies(self, args: list[str]) -> Any:
        script = SAM_DIR / "tools" / "lint_policies.py"
        done = self._run([str(self.venv / "bin" / "python"), str(script), *args])
        if done.returncode != 0:
            raise AssertionError(f"lint_policies failed:\n{done.stderr}")
        return json.loads(done.stdout)


def install_tools() -> SamTools:
    """Runs sam/tools/install.sh (a no-op when up to date); raises ToolsUnavailable."""
    venv = Path(os.environ.get("AMLPROXY_TOOLS_VENV", REPO_ROOT / ".venv-tools"))
    try:
        done = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True,
                              timeout=900, check=False, cwd=REPO_ROOT)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ToolsUnavailable(f"{INSTALL_SCRIPT} could not run: {error}") from error
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise ToolsUnavailable(f"{INSTALL_SCRIPT} failed ({done.returncode}):\n{tail}")
    return SamTools(venv)

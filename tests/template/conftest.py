"""Fixtures of the SAM template tests: the template, parameter scenarios, the tools venv."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from tests.template.cfn_resolve import StackResolver, load_template
from tests.template.scenarios import ACCOUNT, REGION, SCENARIOS, STACK
from tests.template.tools import TEMPLATE_PATH, SamTools, ToolsUnavailable, install_tools


@pytest.fixture(scope="session")
def sam_template() -> dict[str, Any]:
    """sam/template.yaml as a dict (short tags turned into their long forms)."""
    return load_template(TEMPLATE_PATH)


@pytest.fixture(scope="session")
def resolver_for() -> Callable[[Mapping[str, Any], str], StackResolver]:
    """``resolver_for(template, scenario_name)`` -> a StackResolver for that scenario."""

    def make(template: Mapping[str, Any], scenario: str) -> StackResolver:
        return StackResolver(template, SCENARIOS[scenario], stack_name=STACK, region=REGION,
                             account=ACCOUNT)

    return make


@pytest.fixture(scope="session")
def sam_tools() -> SamTools:
    """The tools venv, installed on first use (about a minute; PyPI needed).

    Skips when it cannot be installed, unless AMLPROXY_REQUIRE_SAM_TOOLS=1 (set it in CI),
    in which case that is a failure.
    """
    try:
        return install_tools()
    except ToolsUnavailable as error:
        if os.environ.get("AMLPROXY_REQUIRE_SAM_TOOLS") == "1":
            pytest.fail(f"SAM template tools unavailable: {error}")
        pytest.skip(f"SAM template tools unavailable (no PyPI?): {error}")


@pytest.fixture(scope="session")
def transformed_template(sam_tools: SamTools, tmp_path_factory: pytest.TempPathFactory
                         ) -> dict[str, Any]:
    """The SAM template transformed to CloudFormation (aws-sam-translator, offline)."""
    output = tmp_path_factory.mktemp("sam") / "transformed.json"
    return sam_tools.transform(TEMPLATE_PATH, output)


"""The README's configuration table is the one the settings generate (no drift)."""

from __future__ import annotations

from pathlib import Path

from amlproxy.settings_doc import settings_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_configuration_table_matches_the_settings():
    table = settings_table().strip()
    assert table in README.read_text(), "regenerate it: python -m amlproxy.settings"

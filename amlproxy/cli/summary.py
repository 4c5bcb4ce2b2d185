"""The summary ``amlproxy score`` prints: counts, reasons, the shadow comparison, outputs."""

from __future__ import annotations

from typing import Any, TextIO

import orjson

from amlproxy.core.report import Report


def print_report(report: Report, outputs: list[str], *, out: TextIO, as_json: bool,
                 quiet: bool) -> None:
    """The report as JSON (``--json``) or as lines, on ``out`` (stderr when the results go
    to stdout)."""
    if as_json:
        doc = report.to_dict() | {"outputs": outputs}
        out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if quiet:
        return
    lines = report.summary_lines() + backend_lines(report.extra.get("backend"))
    lines += [f"  -> {name}" for name in outputs]
    out.write("\n".join(lines) + "\n")
    out.flush()


def backend_lines(summary: Any) -> list[str]:
    """What the backend adds to the summary (the shadow comparison)."""
    if not isinstance(summary, dict) or "shadow_comparison" not in summary:
        return []
    from amlproxy.backends.shadow import comparison_lines

    return comparison_lines(summary["shadow_comparison"])

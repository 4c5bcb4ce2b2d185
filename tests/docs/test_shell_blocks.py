"""Every shell block of README.md and docs/*.md runs as written (see tests/docs/blocks.py):
the docs cannot drift from what the commands do."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.docs.blocks import (
    REPO,
    Run,
    doc_files,
    fenced_blocks,
    indented_commands,
    run_blocks,
)

DOCS = doc_files()
RUNNABLE = {path: [b for b in fenced_blocks(path) if b.is_shell and b.not_run is None]
            for path in DOCS}


@pytest.fixture(scope="module")
def runs() -> dict[Path, Run]:
    """Each file's blocks, the files side by side (each in its own network namespace)."""
    todo = [path for path in DOCS if RUNNABLE[path]]
    with ThreadPoolExecutor(len(todo)) as pool:
        return dict(zip(todo, pool.map(lambda p: run_blocks(RUNNABLE[p]), todo), strict=True))


def test_commands_are_in_fenced_blocks_the_test_can_see():
    hidden = [f"{path.relative_to(REPO)}:{n}: {text}" for path in DOCS
              for n, text in indented_commands(path)]
    assert not hidden, "put these in ```sh blocks (or <!-- not run: why --> ones):\n" + \
        "\n".join(hidden)


def test_blocks_that_do_not_run_say_why():
    marked = [b for path in DOCS for b in fenced_blocks(path) if b.not_run is not None]
    assert all(len(b.not_run or "") > 10 for b in marked)
    assert all(b.is_shell for b in marked), "only shell blocks are run, or marked"


@pytest.mark.parametrize("path", [p for p in DOCS if RUNNABLE[p]],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_every_unmarked_shell_block_runs(path, runs):
    blocks, run = RUNNABLE[path], runs[path]
    failed = next((b for i, b in enumerate(blocks) if i not in run.completed), None)
    assert failed is None and run.returncode == 0, (
        f"{failed.name if failed else path.name} failed (exit {run.returncode}):\n"
        + run.output[-6000:])
    assert not run.leftovers, f"blocks of {path.name} left processes running: {run.leftovers}"

"""The shell blocks of README.md and docs/*.md, and a runner that runs them as written.

A shell block is a fenced block tagged ``sh``, ``bash``, ``shell`` or ``console`` (in a
``console`` block, the ``$ `` lines are the commands, the others their output). A block
that cannot run here (it needs an AWS account, or it is the test suite itself) is marked by
an HTML comment on the line before it, with the reason::

    <!-- not run: needs a deployed stack in an AWS account -->

Every other block runs. The blocks of one file run in order, in one ``bash`` session
(``set -eo pipefail``; an ``export`` carries over, as in a terminal), from a copy of the
repository, in a network namespace of their own when the machine allows one (their
servers then bind 127.0.0.1:8080 and :5000 as written without meeting anyone else's).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
_FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")
_NOT_RUN = re.compile(r"<!--\s*not run:\s*(.+?)\s*-->")
_MARK = "::docs-block"
# The first word of an indented block that is a command (so it must be a fenced block).
COMMANDS = ("amlproxy", "make", "aws", "curl", "sam", "sam/", "python", "export", "cd ",
            "pip", ".venv/", "PYTHONPATH", "AMLPROXY_", "$ ")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text, and why it is not run."""

    path: Path
    line: int
    language: str
    text: str
    not_run: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def is_shell(self) -> bool:
        return self.language in SHELL_LANGUAGES

    def script(self) -> str:
        """The commands of the block (a console block's ``$ `` lines, with their
        continuation lines)."""
        if self.language != "console":
            return self.text
        commands, continued = [], False
        for line in self.text.splitlines():
            if continued or line.startswith("$ "):
                commands.append(line[2:] if line.startswith("$ ") and not continued else line)
                continued = line.endswith("\\")
        return "\n".join(commands) + "\n"


def doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def fenced_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, language, start = match.group(1), match.group(2).lower(), i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        reason = _NOT_RUN.search(before)
        blocks.append(Block(path, start + 1, language, "\n".join(body) + "\n",
                            reason.group(1) if reason else None))
    return blocks


def indented_commands(path: Path) -> list[tuple[int, str]]:
    """Indented (unfenced) code blocks holding a command, and indented fences of a shell
    language (the runner sees only fences at the start of a line), as (first line,
    command): these would escape the test, so they must be fenced blocks at column 0."""
    found: list[tuple[int, str]] = []
    fenced, code_start, previous = False, 0, ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = _FENCE.match(line.lstrip())
        if fence:
            if line[:1].isspace() and not fenced and fence.group(2) in SHELL_LANGUAGES:
                found.append((number, line.strip()))
            fenced = not fenced
        elif not fenced and line.startswith("    "):
            opens = not previous.strip() or previous.startswith("#") or code_start
            code_start = code_start or (number if opens else 0)
            command = line.strip()
            if code_start and command.startswith(COMMANDS) and (
                    not found or found[-1][0] != code_start):
                found.append((code_start, command))
        elif line.strip():
            code_start = 0
        previous = line
    return found


def script_of(blocks: list[Block]) -> str:
    """One bash script running the blocks in order, saying which one starts and ends."""
    parts = ["set -eo pipefail"]
    for index, block in enumerate(blocks):
        parts += [f"printf '\\n{_MARK} {index} start {block.name}\\n'", block.script().rstrip(),
                  f"printf '\\n{_MARK} {index} ok\\n'"]  # (output may end without a newline)
    return "\n".join(parts) + "\n"


def copy_of_the_repository(into: Path) -> Path:
    """A copy of the work tree, as a fresh clone would have it, whose ``.venv`` is the
    running interpreter's (bin/ linked, marked installed so that make installs nothing)."""
    copy = into / "amlproxy"
    shutil.copytree(REPO, copy, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv*", ".git", "build", "dist", "__pycache__", ".*_cache", ".hypothesis",
        "*.egg-info", ".amlproxy-local.json", "sam/.build"))
    venv = copy / ".venv"
    venv.mkdir()
    (venv / "bin").symlink_to(Path(sys.executable).parent)
    past = time.time() - 3600
    os.utime(copy / "pyproject.toml", (past, past))
    for stamp in (".runtime", ".dev"):
        (venv / stamp).touch()
    return copy


def isolation() -> list[str]:
    """The command prefix that gives the blocks a network namespace of their own (loopback
    up), or [] when the machine allows none."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    unshare = shutil.which("unshare")
    if unshare is None or not Path(ip).exists():
        return []
    for flags in (["-n"], ["-rn"]):
        probe = subprocess.run([unshare, *flags, ip, "link", "set", "lo", "up"],
                               capture_output=True, timeout=30)
        if probe.returncode == 0:
            return [unshare, *flags, "sh", "-c", f'{ip} link set lo up && exec "$@"', "sh"]
    return []


@dataclass
class Run:
    """What running a file's blocks gave: the blocks that completed, the output, and the
    processes the blocks left behind (servers not stopped)."""

    completed: set[int]
    returncode: int
    output: str
    leftovers: list[str]


def run_blocks(blocks: list[Block], *, timeout_s: float = 300) -> Run:
    with tempfile.TemporaryDirectory(prefix="amlproxy-docs-") as tmp:
        work = Path(tmp)
        copy = copy_of_the_repository(work)
        home = work / "home"
        home.mkdir()
        script = work / "blocks.sh"
        script.write_text(script_of(blocks), encoding="utf-8")
        env = {  # what a new terminal has: no AWS or AMLPROXY variables, an empty HOME
            "PATH": f"{copy / '.venv' / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(home), "LANG": "C.UTF-8", "TMPDIR": tmp, "VIRTUAL_ENV": str(copy / ".venv"),
        }
        log = work / "output.log"
        with open(log, "w", encoding="utf-8") as out:
            proc = subprocess.Popen([*isolation(), "bash", str(script)], cwd=copy, env=env,
                                    stdout=out, stderr=subprocess.STDOUT, text=True,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        output = log.read_text(encoding="utf-8", errors="replace")
        if proc.returncode == -signal.SIGKILL:
            output += f"\n(timed out after {timeout_s:.0f} s)"
        leftovers = _session_processes(proc.pid)
        for pid, _ in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    completed = {int(m) for m in re.findall(rf"^{_MARK} (\d+) ok$", output, re.MULTILINE)}
    return Run(completed, proc.returncode, output, [cmd for _, cmd in leftovers])


def _session_processes(session: int) -> list[tuple[int, str]]:
    """Processes still in the blocks' session (a server a block started and left)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            found.append((int(stat.parent.name), cmdline.strip()))
    return found

"""CI runs the README's own set-up and test command, verbatim, in a fresh venv: nothing installed beside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_block(name: str) -> str:
    """The README's block after <!-- ci:NAME -->, read the way .ci/run reads it (its own awk)."""
    script = ROOT / ".ci" / "run"
    function = re.search(r"^readme_block\(\) \{.*?^\}\n", script.read_text(), re.S | re.M).group(0)
    result = subprocess.run(
        ["bash", "-c", f"{function}\nreadme_block {name}"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout


def test_ci_installs_nothing_but_the_readme_set_up():
    """The only installs in .ci/run are the README's blocks: a missing step fails CI before it fails a user."""
    script = (ROOT / ".ci" / "run").read_text()
    code = [line.split("#")[0] for line in script.splitlines()]
    assert not [line for line in code if re.search(r"\bpip\b.*\binstall\b", line)]
    assert 'bash -euo pipefail -c "$setup"' in script and 'setup="$(readme_block setup)"' in script
    assert 'bash -euo pipefail -c "$tests"' in script and 'tests="$(readme_block test)"' in script


def test_the_readme_set_up_takes_the_cpu_build_without_a_gpu():
    setup = readme_block("setup")
    assert 'pip install -e ".[dev]"' in setup
    cpu_line = next(line for line in setup.splitlines() if "torch==" in line)
    assert "+cpu" in cpu_line and "download.pytorch.org/whl/cpu" in cpu_line
    assert "nvidia-smi" in setup  # only where there is no NVIDIA driver
    pinned = re.search(r"torch==([\d.]+)\+cpu", cpu_line).group(1)
    pyproject = (ROOT / "pyproject.toml").read_text()
    low, high = re.search(r'"torch>=([\d.]+),<(\d+)"', pyproject).groups()
    as_tuple = lambda version: tuple(int(part) for part in version.split("."))  # noqa: E731
    assert as_tuple(low) <= as_tuple(pinned) < (int(high),)  # the project's range keeps the CPU build


def test_the_readme_test_command_uses_every_core_and_runs_everything():
    command = readme_block("test").strip()
    assert command.startswith("python -m pytest") and "-n auto" in command
    options = command.removeprefix("python -m pytest").split()
    assert "-m" not in options and "-k" not in options and "--lf" not in options  # the whole suite, no subset
    assert "pytest-xdist" in (ROOT / "pyproject.toml").read_text()
